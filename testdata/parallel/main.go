// parallel runs GOROUTINES goroutines (default 8) at once, each making MAPS maps of its own
// (hint 0, so they grow) and inserting INSERTS keys in all, so hits land on many threads at
// the same time: what --count's per-thread kernel counters must all see.
//
// Usage: parallel [GOROUTINES [INSERTS [MAPS]]]
package main

import (
	"fmt"
	"os"
	"strconv"
	"sync"
)

var keep = make([][]map[int64]int, 0)

func arg(i, def int) int {
	if len(os.Args) <= i {
		return def
	}
	n, err := strconv.Atoi(os.Args[i])
	if err != nil || n < 0 {
		fmt.Fprintln(os.Stderr, "usage: parallel [GOROUTINES [INSERTS [MAPS]]]")
		os.Exit(2)
	}
	return n
}

//go:noinline
func work(id, inserts, maps int) []map[int64]int {
	out := make([]map[int64]int, 0, maps)
	for m := 0; m < maps; m++ {
		mm := make(map[int64]int)
		for k := 0; k < inserts/maps; k++ {
			mm[int64(id*1000000+k)] = k
		}
		out = append(out, mm)
	}
	return out
}

func main() {
	goroutines, inserts, maps := arg(1, 8), arg(2, 20000), arg(3, 20)
	if maps == 0 {
		maps = 1
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(id int) {
			defer wg.Done()
			r := work(id, inserts, maps)
			mu.Lock()
			keep = append(keep, r)
			mu.Unlock()
		}(g)
	}
	wg.Wait()
	fmt.Printf("parallel goroutines=%d inserts=%d maps=%d\n", goroutines, inserts/maps*maps*goroutines, maps*goroutines)
}
