// latency times its own map work with no tracer in the way: the median of many
// make(map[int64]int64, 3000) calls, and the median time to fill a map made without a hint
// with 3000 keys (every growth step included), and the median time to fill a map made with
// that hint (no growth): the fill's growth alone is the difference. A test compares these
// figures with what a tracer reports after subtracting its own cost.
//
// Usage: latency [makes [fills]]   (defaults 31 and 7)
package main

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"time"
)

const size = 3000

var sink []map[int64]int64

//go:noinline
func presize() map[int64]int64 {
	return make(map[int64]int64, size)
}

//go:noinline
func grow() map[int64]int64 {
	m := make(map[int64]int64)
	for i := int64(0); i < size; i++ {
		m[i] = i
	}
	return m
}

//go:noinline
func presizedFill() map[int64]int64 {
	m := make(map[int64]int64, size)
	for i := int64(0); i < size; i++ {
		m[i] = i
	}
	return m
}

func median(d []time.Duration) time.Duration {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[len(d)/2]
}

func arg(i, def int) int {
	if len(os.Args) > i {
		if v, err := strconv.Atoi(os.Args[i]); err == nil && v > 0 {
			return v
		}
	}
	return def
}

func main() {
	makes, fills := arg(1, 31), arg(2, 7)
	var mk, fl, pf []time.Duration
	for i := 0; i < makes; i++ {
		t := time.Now()
		m := presize()
		mk = append(mk, time.Since(t))
		sink = append(sink, m)
	}
	for i := 0; i < fills; i++ {
		t := time.Now()
		m := grow()
		fl = append(fl, time.Since(t))
		sink = append(sink, m)
		t = time.Now()
		m = presizedFill()
		pf = append(pf, time.Since(t))
		sink = append(sink, m)
	}
	fmt.Printf("make_p50_ns=%d fill_p50_ns=%d presized_fill_p50_ns=%d maps=%d\n",
		median(mk).Nanoseconds(), median(fl).Nanoseconds(), median(pf).Nanoseconds(), len(sink))
}
