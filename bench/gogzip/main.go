// Command gogzip compresses profiles the way Go's runtime/pprof writes them
// (compress/gzip at gzip.BestSpeed), so derived profiles weigh what a Go
// service would serve: FILE.pb becomes FILE.pb.gz (FILE.pb is removed).
//
// bench/churn.py builds it with the installed Go (standard library only).
//
//	gogzip 00001.pb 00002.pb ...
package main

import (
	"compress/gzip"
	"fmt"
	"os"
	"strings"
)

func main() {
	for _, name := range os.Args[1:] {
		if err := compress(name); err != nil {
			fmt.Fprintf(os.Stderr, "gogzip: %v\n", err)
			os.Exit(1)
		}
	}
}

func compress(name string) error {
	if !strings.HasSuffix(name, ".pb") {
		return fmt.Errorf("%s: expected a .pb file", name)
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return err
	}
	out, err := os.Create(name + ".gz")
	if err != nil {
		return err
	}
	zw, err := gzip.NewWriterLevel(out, gzip.BestSpeed)
	if err != nil {
		return err
	}
	if _, err := zw.Write(data); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Remove(name)
}
