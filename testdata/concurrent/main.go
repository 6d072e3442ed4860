// concurrent runs 4 goroutines that each fill maps of their own, plus one map they share
// under a mutex, so the tracer must attribute events to the right goroutine and thread.
package main

import (
	"fmt"
	"sync"
)

const (
	workers       = 4
	mapsPerWorker = 10
	entries       = 100
)

var (
	mu     sync.Mutex
	shared = make(map[int]int)
	keep   [workers][]map[int]int
)

func work(id int) {
	for j := 0; j < mapsPerWorker; j++ {
		m := make(map[int]int)
		for k := 0; k < entries; k++ {
			m[k] = id
		}
		keep[id] = append(keep[id], m)
	}
	for k := 0; k < entries; k++ {
		mu.Lock()
		shared[id*entries+k] = id
		mu.Unlock()
	}
}

func main() {
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func(id int) {
			defer wg.Done()
			work(id)
		}(i)
	}
	wg.Wait()
	for i := 0; i < workers; i++ {
		fmt.Printf("worker=%d maps=%d len=%d\n", i, len(keep[i]), len(keep[i][0]))
	}
	fmt.Printf("shared len=%d\n", len(shared))
}
