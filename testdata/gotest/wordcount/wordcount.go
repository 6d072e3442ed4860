// Package wordcount counts words into a map made with no size hint: it grows as it fills,
// which a `go test -exec gomaptrace --expect` job is there to notice.
package wordcount

// Count returns how often each word occurs.
func Count(words []string) map[string]int {
	counts := make(map[string]int)
	for _, w := range words {
		counts[w]++
	}
	return counts
}
