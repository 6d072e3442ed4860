// signals handles SIGINT, SIGTERM, SIGHUP and SIGUSR1 itself while doing map work, printing
// each one it gets and, 300 ms after the first, how many it got: a tracer that passes a
// signal on twice, or not at all, changes its output. With argument "segv" it dies of a
// real SIGSEGV instead (the Go runtime's handler reset to the default first), so the tracer
// must report a death by signal exactly as the shell sees it untraced. With argument "busy"
// four more goroutines make maps without pause, so that a hit is under way at any moment.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
	"unsafe"
)

var keep map[int]int

var busy [4]map[int]int

func work(round int) {
	m := make(map[int]int)
	for i := 0; i < 16; i++ {
		m[i] = round
	}
	keep = m
}

// sigaction is the kernel's struct for rt_sigaction on amd64.
type sigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

func dieOfSegv() {
	for i := 0; i < 10; i++ {
		work(i)
	}
	fmt.Println("about to fault")
	var dfl sigaction // SIG_DFL
	syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(syscall.SIGSEGV),
		uintptr(unsafe.Pointer(&dfl)), 0, 8, 0, 0)
	var p *int
	*p = 1 // the kernel's default action for SIGSEGV: the process dies of it
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "segv" {
		dieOfSegv()
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "busy" {
		for g := 0; g < 4; g++ {
			go func(g int) {
				for round := 0; ; round++ {
					m := make(map[int]int)
					m[g] = round
					busy[g] = m
				}
			}(g)
		}
	}
	ch := make(chan os.Signal, 8)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGUSR1)
	fmt.Println("ready")
	deadline := time.After(30 * time.Second)
	var done <-chan time.Time
	got := 0
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for round := 0; ; round++ {
		select {
		case s := <-ch:
			fmt.Printf("got %v\n", s)
			got++
			if done == nil {
				done = time.After(300 * time.Millisecond)
			}
		case <-done:
			fmt.Printf("signals=%d\n", got)
			return
		case <-deadline:
			fmt.Println("timeout: no signal")
			os.Exit(1)
		case <-tick.C:
			work(round)
		}
	}
}
