package game

import (
	"embed"
	"fmt"
	"path"
	"slices"
	"strings"
)

// wordFiles holds the word lists, one file per category (words/README.md):
// adding a category is adding a file.
//
//go:embed words/*.txt
var wordFiles embed.FS

// DefaultCategory is the category of a room created without one: the
// general list every room used before categories existed.
const DefaultCategory = "classic"

// categories maps each category to its words, parsed once at start-up.
// The lists are part of the binary, so a malformed one is a build mistake
// that TestWordLists catches; here a bad line is left out rather than
// offered as a secret word.
var categories = loadCategories()

func loadCategories() map[string][]string {
	entries, err := wordFiles.ReadDir("words")
	if err != nil {
		panic(fmt.Sprintf("embedded word lists: %v", err))
	}
	out := make(map[string][]string, len(entries))
	for _, e := range entries {
		b, err := wordFiles.ReadFile(path.Join("words", e.Name()))
		if err != nil {
			panic(fmt.Sprintf("embedded word list %s: %v", e.Name(), err))
		}
		var list []string
		for _, w := range strings.Fields(string(b)) {
			if ValidWord(w) {
				list = append(list, w)
			}
		}
		out[strings.TrimSuffix(e.Name(), ".txt")] = list
	}
	return out
}

// Categories returns the names of the embedded word lists, sorted: what a
// room may be created with.
func Categories() []string {
	names := make([]string, 0, len(categories))
	for n := range categories {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// CategoryWords returns a copy of the words of a category, and whether it
// exists.
func CategoryWords(category string) ([]string, bool) {
	list, ok := categories[category]
	return slices.Clone(list), ok
}

// Words returns the words of DefaultCategory.
func Words() []string {
	list, _ := CategoryWords(DefaultCategory)
	return list
}

// WordAt returns the word at position i of DefaultCategory, wrapping
// around, so a proposer can turn any random number into a word.
func WordAt(i uint64) string {
	list := categories[DefaultCategory]
	return list[i%uint64(len(list))]
}

// PickWord returns a word of category whose length is within the room's
// range (0s: any length), chosen by the random number r, and none of
// avoid (the room's recent words) unless those are all it has: proposers
// pick before a command enters the log; the Machine never does. An
// unknown category, or one without a word of those lengths, is
// CodeInvalid: the room cannot be created with those settings.
func PickWord(category string, minLen, maxLen int, r uint64, avoid ...string) (string, error) {
	if category == "" {
		category = DefaultCategory
	}
	list, ok := categories[category]
	if !ok {
		return "", errorf(CodeInvalid, "unknown word category %q: choose one of %s", clip(category), strings.Join(Categories(), ", "))
	}
	minLen, maxLen = wordLengths(minLen, maxLen)
	var fit []string
	for _, w := range list {
		if len(w) >= minLen && len(w) <= maxLen {
			fit = append(fit, w)
		}
	}
	if len(fit) == 0 {
		return "", errorf(CodeInvalid, "category %q has no word of %d-%d letters", category, minLen, maxLen)
	}
	if fresh := slices.DeleteFunc(slices.Clone(fit), func(w string) bool { return slices.Contains(avoid, w) }); len(fresh) > 0 {
		fit = fresh
	}
	return fit[r%uint64(len(fit))], nil
}
