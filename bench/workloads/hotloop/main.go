// hotloop: N inserts of fresh int keys into one map[int]int, so nearly every traced call is
// runtime.mapassign_fast64 and the run time is dominated by the calls being traced.
package main

import (
	"fmt"
	"os"
	"strconv"
)

func main() {
	n := 100000
	if len(os.Args) > 1 {
		v, err := strconv.Atoi(os.Args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, "usage: hotloop [N]")
			os.Exit(2)
		}
		n = v
	}
	m := make(map[int]int)
	for i := 0; i < n; i++ {
		m[i] = i
	}
	fmt.Println(len(m))
}
