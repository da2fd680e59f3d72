package rendercmd

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// stdinName is how `-f -` is named in reports.
const stdinName = "<stdin>"

// document is one YAML or JSON document of an input.
type document struct {
	source string // file path, or <stdin>
	index  int    // 1-based position in its source, counting the documents between --- separators
	raw    []byte
}

// where names the document in reports: "deploy/mesh.yaml, document 2".
func (d document) where() string { return fmt.Sprintf("%s, document %d", d.source, d.index) }

// manifestExt are the files a directory contributes (kubectl -R's set).
var manifestExt = []string{".yaml", ".yml", ".json"}

// readSources reads every -f source in order: a file, a directory (every
// *.yaml, *.yml and *.json below it, in lexical order), or "-" for stdin,
// each split into its documents. An I/O error on any source is returned,
// all of them joined: nothing is judged on partial input.
func readSources(sources []string, stdin io.Reader) ([]document, error) {
	var docs []document
	var errs []error
	stdinRead := false
	for _, src := range sources {
		if src == "-" {
			if stdinRead {
				errs = append(errs, errors.New("-f - given twice: stdin can be read once"))
				continue
			}
			stdinRead = true
			d, err := splitDocuments(stdinName, stdin)
			if err != nil {
				errs = append(errs, err)
			}
			docs = append(docs, d...)
			continue
		}
		files, err := expand(src)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, f := range files {
			d, err := readFile(f)
			if err != nil {
				errs = append(errs, err)
			}
			docs = append(docs, d...)
		}
	}
	return docs, errors.Join(errs...)
}

// expand lists the manifest files of src: itself, or those below a directory.
func expand(src string) ([]string, error) {
	info, err := os.Stat(src)
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		return []string{src}, nil
	}
	var files []string
	err = filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() || d.Type()&fs.ModeSymlink != 0 {
			for _, ext := range manifestExt {
				if strings.EqualFold(filepath.Ext(path), ext) {
					files = append(files, path)
				}
			}
		}
		return nil
	})
	return files, err
}

func readFile(path string) ([]document, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	return splitDocuments(path, f)
}

// splitDocuments splits a YAML stream at its --- separators (a JSON file is
// one document), as kubectl does. Documents holding only comments or
// whitespace keep their number but are dropped.
func splitDocuments(source string, r io.Reader) ([]document, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(r))
	var docs []document
	for i := 1; ; i++ {
		raw, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return docs, fmt.Errorf("%s: %w", source, err)
		}
		if isEmpty(raw) {
			continue
		}
		docs = append(docs, document{source: source, index: i, raw: raw})
	}
}

// isEmpty is true for a document of comments and blank lines only.
func isEmpty(raw []byte) bool {
	for _, line := range bytes.Split(raw, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) > 0 && line[0] != '#' && !bytes.Equal(line, []byte("---")) {
			return false
		}
	}
	return true
}
