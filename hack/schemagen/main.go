// Command schemagen writes the per-release Istio mesh schema the operator
// embeds (internal/istioschema/schema.txt): for every message reachable
// from MeshConfig and ProxyConfig, its fields (JSON name, proto name, type)
// and its enum values, each with the first and last release that has it.
//
// It reads the .proto files of one istio.io/api release per minor (the
// list below: the newest patch the Go module proxy served when it was
// last updated), fetched with `go mod download` into the module cache, and
// parses them with a real protobuf compiler (protocompile), using the
// module root and its common-protos/ as import paths.
//
// Usage: go run . -o ../../internal/istioschema/schema.txt
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/bufbuild/protocompile"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Releases is one istio.io/api version per Istio minor, 1.22 to 1.32: the
// newest patch the module proxy serves (a minor's patches do not change
// MeshConfig). Add the next minor here and run `make generate`.
var Releases = []string{
	"v1.22.5", "v1.23.4", "v1.24.4", "v1.25.5", "v1.26.4", "v1.27.8",
	"v1.28.3", "v1.29.6", "v1.30.8", "v1.31.4", "v1.32.0",
}

// Roots are the messages istiod reads from the mesh document.
var Roots = []protoreflect.FullName{"istio.mesh.v1alpha1.MeshConfig", "istio.mesh.v1alpha1.ProxyConfig"}

var protoFiles = []string{"mesh/v1alpha1/config.proto", "mesh/v1alpha1/proxy.proto"}

func main() {
	out := flag.String("o", "", "output file (default stdout)")
	flag.Parse()
	b, err := Generate(context.Background(), Releases)
	if err != nil {
		fmt.Fprintln(os.Stderr, "schemagen:", err)
		os.Exit(1)
	}
	if *out == "" {
		_, _ = os.Stdout.Write(b)
		return
	}
	if err := os.WriteFile(*out, b, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "schemagen:", err)
		os.Exit(1)
	}
}

// Generate builds the table for versions (in release order).
func Generate(ctx context.Context, versions []string) ([]byte, error) {
	t := newTable()
	for i, v := range versions {
		dir, err := moduleDir(ctx, v)
		if err != nil {
			return nil, err
		}
		files, err := compile(ctx, dir)
		if err != nil {
			return nil, fmt.Errorf("istio.io/api@%s: %w", v, err)
		}
		for _, root := range Roots {
			md := findMessage(files, root)
			if md == nil {
				return nil, fmt.Errorf("istio.io/api@%s: no message %s", v, root)
			}
			t.walk(md, i)
		}
	}
	return t.format(versions), nil
}

// moduleDir downloads istio.io/api@version (or finds it in the module
// cache) and returns its directory.
func moduleDir(ctx context.Context, version string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", "istio.io/api@"+version)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var info struct{ Dir, Error string }
	if err := json.Unmarshal(stdout.Bytes(), &info); err != nil || info.Error != "" || runErr != nil {
		if runErr == nil {
			runErr = errors.New(info.Error)
		}
		return "", fmt.Errorf("go mod download istio.io/api@%s (%s %s): %w", version, info.Error, stderr.String(), runErr)
	}
	return info.Dir, nil
}

func compile(ctx context.Context, dir string) ([]protoreflect.FileDescriptor, error) {
	c := protocompile.Compiler{
		Resolver: protocompile.WithStandardImports(&protocompile.SourceResolver{
			ImportPaths: []string{dir, filepath.Join(dir, "common-protos")},
		}),
	}
	res, err := c.Compile(ctx, protoFiles...)
	if err != nil {
		return nil, err
	}
	out := make([]protoreflect.FileDescriptor, len(res))
	for i, f := range res {
		out[i] = f
	}
	return out, nil
}

func findMessage(files []protoreflect.FileDescriptor, name protoreflect.FullName) protoreflect.MessageDescriptor {
	for _, f := range files {
		if d, err := resolve(f, name); err == nil {
			return d
		}
	}
	return nil
}

func resolve(f protoreflect.FileDescriptor, name protoreflect.FullName) (protoreflect.MessageDescriptor, error) {
	msgs := f.Messages()
	for i := 0; i < msgs.Len(); i++ {
		if msgs.Get(i).FullName() == name {
			return msgs.Get(i), nil
		}
	}
	return nil, fmt.Errorf("not found")
}

// key identifies one entry of a message or enum; its presence is tracked
// per release index.
type entry struct {
	line     string // the entry's text without the release range
	releases []int
}

type block struct {
	header  string
	entries map[string]*entry
}

type table struct{ blocks map[string]*block }

func newTable() *table { return &table{blocks: map[string]*block{}} }

func (t *table) add(header, line string, rel int) {
	b := t.blocks[header]
	if b == nil {
		b = &block{header: header, entries: map[string]*entry{}}
		t.blocks[header] = b
	}
	e := b.entries[line]
	if e == nil {
		e = &entry{line: line}
		b.entries[line] = e
	}
	if !slices.Contains(e.releases, rel) {
		e.releases = append(e.releases, rel)
	}
}

// wellKnown types have JSON forms of their own (a Duration is "1.5s", a
// Struct any object): the table records them as leaf types.
func wellKnown(name protoreflect.FullName) bool {
	return strings.HasPrefix(string(name), "google.protobuf.")
}

// walk records md and every message and enum reachable from it for release rel.
func (t *table) walk(md protoreflect.MessageDescriptor, rel int) {
	seen := map[protoreflect.FullName]bool{}
	var visit func(md protoreflect.MessageDescriptor)
	visitEnum := func(ed protoreflect.EnumDescriptor) {
		header := "E " + string(ed.FullName())
		t.add(header, "", rel)
		vals := ed.Values()
		for i := 0; i < vals.Len(); i++ {
			t.add(header, "V "+string(vals.Get(i).Name()), rel)
		}
	}
	visit = func(md protoreflect.MessageDescriptor) {
		if seen[md.FullName()] || wellKnown(md.FullName()) {
			return
		}
		seen[md.FullName()] = true
		header := "M " + string(md.FullName())
		t.add(header, "", rel)
		fields := md.Fields()
		for i := 0; i < fields.Len(); i++ {
			fd := fields.Get(i)
			proto := string(fd.Name())
			if proto == fd.JSONName() {
				proto = "-"
			}
			t.add(header, fmt.Sprintf("F %s %s %s", fd.JSONName(), proto, fieldType(fd)), rel)
			value := fd
			if fd.IsMap() {
				value = fd.MapValue()
			}
			if m := value.Message(); m != nil {
				visit(m)
			}
			if e := value.Enum(); e != nil {
				visitEnum(e)
			}
		}
	}
	visit(md)
}

// fieldType is a field's type as the table spells it: a scalar kind, or
// .full.Name of a message or enum, prefixed with [] for repeated fields
// and map[key] for maps.
func fieldType(fd protoreflect.FieldDescriptor) string {
	switch {
	case fd.IsMap():
		return "map[" + kindName(fd.MapKey()) + "]" + kindName(fd.MapValue())
	case fd.IsList():
		return "[]" + kindName(fd)
	}
	return kindName(fd)
}

func kindName(fd protoreflect.FieldDescriptor) string {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return "." + string(fd.Message().FullName())
	case protoreflect.EnumKind:
		return "enum." + string(fd.Enum().FullName())
	}
	return fd.Kind().String()
}

// format writes the table: a header naming the releases, then each
// message (M) and enum (E) with its range and its fields (F) or values (V)
// with theirs. A range is "first last" (minor versions); an entry absent
// in some release between two present ones is written once per run.
func (t *table) format(versions []string) []byte {
	var buf bytes.Buffer
	buf.WriteString("# Code generated by hack/schemagen from istio.io/api protos; DO NOT EDIT.\n")
	buf.WriteString("# M message, E enum, F field (jsonName protoName|- type), V enum value; then the first and last release.\n")
	buf.WriteString("releases")
	for _, v := range versions {
		buf.WriteString(" " + strings.TrimPrefix(v, "v"))
	}
	buf.WriteString("\n")
	minor := func(i int) string {
		parts := strings.SplitN(strings.TrimPrefix(versions[i], "v"), ".", 3)
		return parts[0] + "." + parts[1]
	}
	ranges := func(rels []int) []string {
		slices.Sort(rels)
		var out []string
		start := rels[0]
		for i := 1; i <= len(rels); i++ {
			if i == len(rels) || rels[i] != rels[i-1]+1 {
				out = append(out, minor(start)+" "+minor(rels[i-1]))
				if i < len(rels) {
					start = rels[i]
				}
			}
		}
		return out
	}
	headers := make([]string, 0, len(t.blocks))
	for h := range t.blocks {
		headers = append(headers, h)
	}
	slices.Sort(headers)
	for _, h := range headers {
		b := t.blocks[h]
		for _, r := range ranges(b.entries[""].releases) {
			fmt.Fprintf(&buf, "%s %s\n", h, r)
		}
		lines := make([]string, 0, len(b.entries))
		for l := range b.entries {
			if l != "" {
				lines = append(lines, l)
			}
		}
		slices.Sort(lines)
		for _, l := range lines {
			for _, r := range ranges(b.entries[l].releases) {
				fmt.Fprintf(&buf, "%s %s\n", l, r)
			}
		}
	}
	return buf.Bytes()
}
