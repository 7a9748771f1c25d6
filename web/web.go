// Package web holds the browser page of the game (plain HTML, CSS and
// JavaScript, no build step), embedded into the binary so that every relay
// serves it with nothing to install.
package web

import (
	"embed"
	"io/fs"
)

//go:embed static
var static embed.FS

// FS is the page's files, rooted at the directory that holds index.html.
var FS fs.FS = mustSub(static, "static")

func mustSub(f fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(f, dir)
	if err != nil {
		panic("web: embedded assets: " + err.Error()) // cannot happen: dir is embedded above
	}
	return sub
}
