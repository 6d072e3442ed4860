// stress: 8 goroutines each make and fill 10000 small maps (or as many as the first argument
// says), for throughput and for races between threads hitting the same breakpoints
// (GOMAXPROCS comes from the environment).
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
)

const (
	goroutines = 8
	entries    = 4
)

var sink [goroutines]map[int]int

func main() {
	mapsEach := 10000
	if len(os.Args) > 1 {
		n, err := strconv.Atoi(os.Args[1])
		if err != nil || n < 1 {
			fmt.Fprintln(os.Stderr, "usage: stress [maps per goroutine]")
			os.Exit(2)
		}
		mapsEach = n
	}
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < mapsEach; i++ {
				m := make(map[int]int)
				for k := 0; k < entries; k++ {
					m[k] = i
				}
				sink[g] = m // escapes: every map is a runtime call
			}
		}(g)
	}
	wg.Wait()
	fmt.Printf("gomaxprocs=%d maps=%d inserts=%d\n", runtime.GOMAXPROCS(0), goroutines*mapsEach,
		goroutines*mapsEach*entries)
}
