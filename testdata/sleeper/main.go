// sleeper runs until it is killed (or for N seconds with argument N), making and filling a
// map every few milliseconds and printing a heartbeat each second: a target for attach and
// detach tests, which need a process that is busy in map code at any moment.
package main

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

var keep map[int]int

func main() {
	limit := -1
	if len(os.Args) > 1 {
		v, err := strconv.Atoi(os.Args[1])
		if err != nil || v < 0 {
			fmt.Fprintf(os.Stderr, "usage: sleeper [seconds]\n")
			os.Exit(2)
		}
		limit = v
	}
	fmt.Printf("pid=%d\n", os.Getpid())
	start := time.Now()
	beat := time.NewTicker(time.Second)
	work := time.NewTicker(5 * time.Millisecond)
	made := 0
	for n := 1; ; {
		select {
		case <-beat.C:
			fmt.Printf("heartbeat=%d maps=%d\n", n, made)
			if limit >= 0 && time.Since(start) >= time.Duration(limit)*time.Second {
				return
			}
			n++
		case <-work.C:
			m := make(map[int]int)
			for i := 0; i < 10; i++ {
				m[i] = n
			}
			keep = m
			made++
		}
	}
}
