// godwarf prints the layout of Go runtime structs as Go's own debug/dwarf reads them, as
// the truth that gomaptrace's libdwarf reader is tested against. debug/dwarf (through
// debug/elf) decompresses .zdebug_ and SHF_COMPRESSED sections by itself.
//
// Usage: godwarf BINARY STRUCT...
// Output: {"producer": "...", "structs": {"STRUCT": {"name", "size", "fields": [{name,
// offset, size, type_name}]} or null when the binary has no such struct}}.
//
// Usage: godwarf -types BINARY TYPE...
// Output: {"runtime_types": address of the runtime.types symbol, "types": {"TYPE": offset
// of its runtime type descriptor from runtime.types (the linker's DW_AT_go_runtime_type) or
// null}}, the truth for gomaptrace's type-name decoding.
package main

import (
	"debug/dwarf"
	"debug/elf"
	"encoding/json"
	"fmt"
	"os"
)

type field struct {
	Name     string `json:"name"`
	Offset   int64  `json:"offset"`
	Size     int64  `json:"size"`
	TypeName string `json:"type_name"`
}

type structInfo struct {
	Name   string  `json:"name"`
	Size   int64   `json:"size"`
	Fields []field `json:"fields"`
}

type output struct {
	Producer string                 `json:"producer"`
	Structs  map[string]*structInfo `json:"structs"`
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "godwarf: "+format+"\n", args...)
	os.Exit(1)
}

// entryName is the DW_AT_name of the DIE at off: Go names every type DIE, pointers included
// ("*runtime.bmap"), and that raw name is what gomaptrace reports as a field's type name.
func entryName(d *dwarf.Data, off dwarf.Offset) string {
	r := d.Reader()
	r.Seek(off)
	e, err := r.Next()
	if err != nil || e == nil {
		return ""
	}
	s, _ := e.Val(dwarf.AttrName).(string)
	return s
}

// attrGoRuntimeType is DW_AT_go_runtime_type, Go's vendor attribute linking a DWARF type to
// its runtime type descriptor.
const attrGoRuntimeType dwarf.Attr = 0x2904

func runtimeTypes(f *elf.File, d *dwarf.Data, names []string) {
	out := map[string]interface{}{}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
		out[n] = nil
	}
	r := d.Reader()
	for {
		e, err := r.Next()
		if err != nil {
			fail("%v", err)
		}
		if e == nil {
			break
		}
		name, _ := e.Val(dwarf.AttrName).(string)
		if !want[name] || out[name] != nil {
			continue
		}
		if addr, ok := e.Val(attrGoRuntimeType).(uint64); ok {
			out[name] = addr
		}
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	var base interface{}
	if syms, err := f.Symbols(); err == nil {
		for _, s := range syms {
			if s.Name == "runtime.types" {
				base = s.Value
			}
		}
	}
	if err := enc.Encode(map[string]interface{}{"runtime_types": base, "types": out}); err != nil {
		fail("%v", err)
	}
}

func openDWARF(path string) (*elf.File, *dwarf.Data) {
	f, err := elf.Open(path)
	if err != nil {
		fail("%v", err)
	}
	d, err := f.DWARF()
	if err != nil {
		fail("%v", err)
	}
	return f, d
}

func main() {
	if len(os.Args) >= 3 && os.Args[1] == "-types" {
		f, d := openDWARF(os.Args[2])
		runtimeTypes(f, d, os.Args[3:])
		return
	}
	if len(os.Args) < 3 {
		fail("usage: godwarf BINARY STRUCT... | godwarf -types BINARY TYPE...")
	}
	_, d := openDWARF(os.Args[1])
	want := map[string]bool{}
	out := output{Structs: map[string]*structInfo{}}
	for _, n := range os.Args[2:] {
		want[n] = true
		out.Structs[n] = nil
	}
	r := d.Reader()
	for {
		e, err := r.Next()
		if err != nil {
			fail("%v", err)
		}
		if e == nil {
			break
		}
		if e.Tag == dwarf.TagCompileUnit && out.Producer == "" {
			out.Producer, _ = e.Val(dwarf.AttrProducer).(string)
		}
		if e.Tag != dwarf.TagStructType {
			continue
		}
		name, _ := e.Val(dwarf.AttrName).(string)
		if !want[name] || out.Structs[name] != nil {
			continue
		}
		t, err := d.Type(e.Offset)
		if err != nil {
			fail("%s: %v", name, err)
		}
		st, ok := t.(*dwarf.StructType)
		if !ok {
			fail("%s: not a struct type", name)
		}
		info := &structInfo{Name: name, Size: st.Size(), Fields: []field{}}
		// The field's type offset comes from the raw member DIEs, in order.
		mr := d.Reader()
		mr.Seek(e.Offset)
		mr.Next()
		i := 0
		for e.Children {
			m, err := mr.Next()
			if err != nil {
				fail("%v", err)
			}
			if m == nil || m.Tag == 0 {
				break
			}
			if m.Tag != dwarf.TagMember {
				mr.SkipChildren()
				continue
			}
			sf := st.Field[i]
			i++
			toff, _ := m.Val(dwarf.AttrType).(dwarf.Offset)
			info.Fields = append(info.Fields, field{
				Name: sf.Name, Offset: sf.ByteOffset, Size: sf.Type.Size(),
				TypeName: entryName(d, toff),
			})
			mr.SkipChildren()
		}
		out.Structs[name] = info
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		fail("%v", err)
	}
}
