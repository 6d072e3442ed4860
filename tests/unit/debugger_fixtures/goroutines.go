// Test program for the ptrace core: 8 goroutines call hot() a fixed number of times while
// allocating, so the Go runtime preempts (SIGURG) and collects garbage under the tracer.
package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
)

var sink []byte

//go:noinline
//go:nosplit
func hot(x int) int { return x*2 + 1 }

// Runs hot() on 8 goroutines until SIGUSR2, for attach/detach: prints "ready" first.
func untilSignal() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR2)
	var stop atomic.Bool
	var calls atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				if hot(i) != 2*i+1 {
					panic("hot is wrong")
				}
				calls.Add(1)
			}
		}()
	}
	fmt.Println("ready")
	<-sig
	stop.Store(true)
	wg.Wait()
	fmt.Printf("done calls_positive=%v\n", calls.Load() > 0)
}

// n writes through runtime.mapassign_fast64 (growing the map many times), then a checksum.
func maps(n int) {
	m := make(map[int64]int)
	for i := 0; i < n; i++ {
		m[int64(i)*7919] = i
	}
	sum := 0
	for k, v := range m {
		sum += int(k) ^ v
	}
	fmt.Printf("len=%d sum=%d\n", len(m), sum)
}

//go:noinline
func deref(p *int) int { return *p }

// A nil dereference that Go turns into a panic from its SIGSEGV handler: that needs the
// faulting PC to be deref's own, even when the load ran out of line under a tracer.
func nilPanic() {
	defer func() { fmt.Printf("recovered: %v\n", recover()) }()
	var p *int
	fmt.Println(deref(p))
}

func main() {
	if os.Args[1] == "nilpanic" {
		nilPanic()
		return
	}
	if os.Args[1] == "maps" {
		n, _ := strconv.Atoi(os.Args[2])
		maps(n)
		return
	}
	if os.Args[1] == "until-signal" {
		untilSignal()
		return
	}
	if len(os.Args) > 2 && os.Args[2] == "profile" {
		// SIGPROF at 100 Hz per thread, each one a traceback from the interrupted PC.
		pprof.StartCPUProfile(io.Discard)
		defer pprof.StopCPUProfile()
	}
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
