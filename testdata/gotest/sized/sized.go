// Package sized builds its index in a map sized for it up front: it never grows.
package sized

// Index maps each of n keys to its square.
func Index(n int) map[int]int {
	m := make(map[int]int, n)
	for i := 0; i < n; i++ {
		m[i] = i * i
	}
	return m
}
