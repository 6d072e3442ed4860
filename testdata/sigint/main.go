// sigint catches SIGINT with signal.Notify while doing map work, so a test can check that
// the tracer passes the signal on (program prints "got SIGINT", exits 0). It gives up after
// 30 s so a broken test cannot hang forever.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

var keep map[int]int

func main() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT)
	fmt.Println("ready")
	deadline := time.After(30 * time.Second)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for round := 0; ; round++ {
		select {
		case <-ch:
			fmt.Println("got SIGINT")
			os.Exit(0)
		case <-deadline:
			fmt.Println("timeout: no SIGINT")
			os.Exit(1)
		case <-tick.C:
			m := make(map[int]int)
			for i := 0; i < 16; i++ {
				m[i] = round
			}
			keep = m
		}
	}
}
