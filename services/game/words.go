package game

import (
	_ "embed"
	"strings"
)

//go:embed words.txt
var wordsFile string

// words is the embedded list, parsed once; every entry passes ValidWord.
var words = strings.Fields(wordsFile)

// Words returns the embedded word list. Proposers pick from it (with their
// own randomness) before a command enters the log; the Machine never does.
func Words() []string {
	return append([]string(nil), words...)
}

// WordAt returns the word at position i of the list, wrapping around, so a
// proposer can turn any random number into a word.
func WordAt(i uint64) string {
	return words[i%uint64(len(words))]
}
