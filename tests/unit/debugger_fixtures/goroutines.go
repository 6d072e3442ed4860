// Test program for the ptrace core: 8 goroutines call hot() a fixed number of times while
// allocating, so the Go runtime preempts (SIGURG) and collects garbage under the tracer.
package main

import (
	"fmt"
	"os"
	"strconv"
	"sync"
)

var sink []byte

//go:noinline
//go:nosplit
func hot(x int) int { return x*2 + 1 }

func main() {
	n, _ := strconv.Atoi(os.Args[1])
	var wg sync.WaitGroup
	sums := make([]int, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < n; i++ {
				sums[g] += hot(i)
				if i%64 == 0 {
					sink = make([]byte, 4096)
				}
			}
		}(g)
	}
	wg.Wait()
	total := 0
	for _, s := range sums {
		total += s
	}
	fmt.Printf("total=%d\n", total)
}
