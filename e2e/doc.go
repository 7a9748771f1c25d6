// Package e2e holds the end-to-end browser tests: the real hangman binary
// (game nodes and relays as separate processes) driven through the real page
// in headless Chromium, so that what a player sees is what is tested. They
// skip with a message under -short or when Chromium is not installed.
package e2e
