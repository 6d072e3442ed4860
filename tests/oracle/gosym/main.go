// Command gosym is the test oracle for gomaptrace's .gopclntab reader: it reads a Go binary
// with Go's own debug/elf, debug/gosym and debug/buildinfo.
//
//	gosym BINARY             JSON {"go_version": ..., "text_start": ..., "funcs": [{"name", "entry", "end"}]}
//	gosym BINARY pcline PC...  one "file:line:func" line per PC (hex with 0x, or decimal)
//	gosym BINARY inlined NAME...  from DWARF: "NAME\tFUNC" for each function FUNC holding an
//	                              inlined copy of NAME, sorted
//	gosym BINARY sites NAME...    from DWARF: "NAME\tFUNC\t0xPC" for each inlined copy of NAME
//	                              with code, PC its lowest address, sorted
package main

import (
	"debug/buildinfo"
	"debug/dwarf"
	"debug/elf"
	"debug/gosym"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
)

type function struct {
	Name  string `json:"name"`
	Entry uint64 `json:"entry"`
	End   uint64 `json:"end"`
}

type output struct {
	GoVersion string     `json:"go_version"`
	TextStart uint64     `json:"text_start"`
	Funcs     []function `json:"funcs"`
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "gosym: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	if len(os.Args) < 2 || (len(os.Args) > 2 && os.Args[2] != "pcline" && os.Args[2] != "inlined" && os.Args[2] != "sites") {
		fail("usage: gosym BINARY [pcline PC... | inlined NAME... | sites NAME...]")
	}
	path := os.Args[1]
	f, err := elf.Open(path)
	if err != nil {
		fail("%v", err)
	}
	defer f.Close()
	if len(os.Args) > 2 && os.Args[2] == "inlined" {
		inlined(f, os.Args[3:], false)
		return
	}
	if len(os.Args) > 2 && os.Args[2] == "sites" {
		inlined(f, os.Args[3:], true)
		return
	}
	sec := f.Section(".gopclntab")
	if sec == nil {
		sec = f.Section(".data.rel.ro.gopclntab")
	}
	text := f.Section(".text")
	if sec == nil || text == nil {
		fail("%s: no .gopclntab or .text", path)
	}
	data, err := sec.Data()
	if err != nil {
		fail("%v", err)
	}
	// Entries of the 1.18+ formats are offsets from runtime.text, which starts .text.
	table, err := gosym.NewTable(nil, gosym.NewLineTable(data, text.Addr))
	if err != nil {
		fail("%v", err)
	}

	if len(os.Args) > 2 {
		for _, arg := range os.Args[3:] {
			pc, err := strconv.ParseUint(arg, 0, 64)
			if err != nil {
				fail("bad PC %q", arg)
			}
			file, line, fn := table.PCToLine(pc)
			name := ""
			if fn != nil {
				name = fn.Name
			}
			fmt.Printf("%s:%d:%s\n", file, line, name)
		}
		return
	}

	out := output{TextStart: text.Addr, Funcs: []function{}}
	if info, err := buildinfo.ReadFile(path); err == nil {
		out.GoVersion = info.GoVersion
	}
	for _, fn := range table.Funcs {
		out.Funcs = append(out.Funcs, function{Name: fn.Name, Entry: fn.Entry, End: fn.End})
	}
	enc := json.NewEncoder(os.Stdout)
	if err := enc.Encode(out); err != nil {
		fail("%v", err)
	}
}

// inlined prints, for each of wanted, the top-level subprograms whose DWARF holds a
// DW_TAG_inlined_subroutine (at any depth) of that function; with sites, one line per such
// record that has code, with its lowest PC.
func inlined(f *elf.File, wanted []string, sites bool) {
	want := map[string]bool{}
	for _, n := range wanted {
		want[n] = true
	}
	d, err := f.DWARF()
	if err != nil {
		fail("%v", err)
	}
	r := d.Reader()
	names := map[dwarf.Offset]string{} // abstract origins seen so far
	originName := func(off dwarf.Offset) string {
		if n, ok := names[off]; ok {
			return n
		}
		rr := d.Reader()
		rr.Seek(off)
		e, err := rr.Next()
		if err != nil || e == nil {
			return ""
		}
		n, _ := e.Val(dwarf.AttrName).(string)
		names[off] = n
		return n
	}
	found := map[string]bool{}
	outer := ""
	depth := 0
	for {
		e, err := r.Next()
		if err != nil {
			fail("%v", err)
		}
		if e == nil {
			break
		}
		if e.Tag == 0 {
			depth--
			continue
		}
		switch {
		case e.Tag == dwarf.TagCompileUnit:
			depth = 0
		case e.Tag == dwarf.TagSubprogram && depth == 1:
			outer, _ = e.Val(dwarf.AttrName).(string)
			if outer == "" {
				if off, ok := e.Val(dwarf.AttrAbstractOrigin).(dwarf.Offset); ok {
					outer = originName(off)
				}
			}
		case e.Tag == dwarf.TagInlinedSubroutine && outer != "":
			if off, ok := e.Val(dwarf.AttrAbstractOrigin).(dwarf.Offset); ok {
				if n := originName(off); want[n] && !sites {
					found[n+"\t"+outer] = true
				} else if want[n] {
					ranges, err := d.Ranges(e)
					if err != nil {
						fail("%v", err)
					}
					low := ^uint64(0)
					for _, r := range ranges {
						if r[1] > r[0] && r[0] < low {
							low = r[0]
						}
					}
					if low != ^uint64(0) {
						found[fmt.Sprintf("%s\t%s\t%#x", n, outer, low)] = true
					}
				}
			}
		}
		if e.Children {
			depth++
		}
	}
	var out []string
	for n := range found {
		out = append(out, n)
	}
	sort.Strings(out)
	for _, n := range out {
		fmt.Println(n)
	}
}
