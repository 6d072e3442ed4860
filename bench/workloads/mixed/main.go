// mixed: a small "realistic" program: word counts over generated text (map[string]int),
// an inverted index (map[string][]int), per-goroutine maps merged under a mutex, deletes,
// and a JSON round trip of the result (encoding/json uses maps and sync.Map internally).
package main

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"sort"
	"strconv"
	"sync"
)

func main() {
	n := 20000
	if len(os.Args) > 1 {
		v, err := strconv.Atoi(os.Args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, "usage: mixed [N]")
			os.Exit(2)
		}
		n = v
	}
	r := rand.New(rand.NewSource(1))
	words := make([]string, 500)
	for i := range words {
		words[i] = fmt.Sprintf("w%03d", i)
	}
	text := make([]string, n)
	for i := range text {
		text[i] = words[r.Intn(len(words))]
	}

	counts := map[string]int{}
	index := map[string][]int{}
	for i, w := range text {
		counts[w]++
		index[w] = append(index[w], i)
	}

	// Four workers count bigrams in their own maps, then merge.
	var mu sync.Mutex
	bigrams := map[[2]string]int{}
	var wg sync.WaitGroup
	for k := 0; k < 4; k++ {
		wg.Add(1)
		go func(k int) {
			defer wg.Done()
			local := map[[2]string]int{}
			for i := k; i+1 < len(text); i += 4 {
				local[[2]string{text[i], text[i+1]}]++
			}
			mu.Lock()
			for b, c := range local {
				bigrams[b] += c
			}
			mu.Unlock()
		}(k)
	}
	wg.Wait()

	for w, c := range counts {
		if c%2 == 0 {
			delete(index, w)
		}
	}
	type entry struct {
		Word  string `json:"word"`
		Count int    `json:"count"`
	}
	top := make([]entry, 0, len(counts))
	for w, c := range counts {
		top = append(top, entry{w, c})
	}
	sort.Slice(top, func(i, j int) bool {
		return top[i].Count > top[j].Count || (top[i].Count == top[j].Count && top[i].Word < top[j].Word)
	})
	if len(top) > 10 {
		top = top[:10]
	}
	out := map[string]any{"top": top, "words": len(counts), "indexed": len(index), "bigrams": len(bigrams)}
	b, err := json.Marshal(out)
	if err != nil {
		panic(err)
	}
	var back map[string]any
	if err := json.Unmarshal(b, &back); err != nil {
		panic(err)
	}
	fmt.Println(len(b), back["words"], back["bigrams"])
}
