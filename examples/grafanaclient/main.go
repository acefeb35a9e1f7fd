// grafanaclient calls Stackyard's Pyroscope query service the way Grafana's
// Pyroscope data source does: Connect unary calls over HTTP, binary protobuf
// (Content-Type: application/proto), Connect-Protocol-Version: 1, and
// Accept-Encoding: gzip. Standard library only: the few messages it needs are
// encoded and decoded by hand from their field numbers.
//
// It asks for the profile types (as "Save & test" does, over start=1000 to
// end=4000 ms, and over -start..-end), the label names for a profile type, and
// the merged flame graph, and prints what it got as one JSON object. A refusal
// prints the Connect error and exits 1.
//
//	grafanaclient -url http://127.0.0.1:4180 -start MS -end MS \
//	    -type process_cpu:cpu:nanoseconds:cpu:nanoseconds -selector '{service_name="api"}' [-token T]
package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// --- protobuf wire format ----------------------------------------------------------------------

const (
	wireVarint = 0
	wire64     = 1
	wireBytes  = 2
	wire32     = 5
)

type encoder struct{ buf []byte }

func (e *encoder) varint(v uint64) {
	for v >= 0x80 {
		e.buf = append(e.buf, byte(v)|0x80)
		v >>= 7
	}
	e.buf = append(e.buf, byte(v))
}

func (e *encoder) tag(field int, wire int) { e.varint(uint64(field)<<3 | uint64(wire)) }

func (e *encoder) int64(field int, v int64) {
	if v == 0 {
		return // proto3: a zero is not sent
	}
	e.tag(field, wireVarint)
	e.varint(uint64(v))
}

func (e *encoder) string(field int, s string) {
	if s == "" {
		return
	}
	e.tag(field, wireBytes)
	e.varint(uint64(len(s)))
	e.buf = append(e.buf, s...)
}

// field is one decoded field: a varint, or the bytes of a length-delimited one.
type field struct {
	number int
	wire   int
	value  uint64
	bytes  []byte
}

func readVarint(b []byte) (uint64, int, error) {
	var v uint64
	for i := 0; i < len(b) && i < 10; i++ {
		v |= uint64(b[i]&0x7f) << (7 * uint(i))
		if b[i] < 0x80 {
			return v, i + 1, nil
		}
	}
	return 0, 0, errors.New("bad varint")
}

func fields(b []byte) ([]field, error) {
	var out []field
	for len(b) > 0 {
		key, n, err := readVarint(b)
		if err != nil {
			return nil, err
		}
		b = b[n:]
		f := field{number: int(key >> 3), wire: int(key & 7)}
		switch f.wire {
		case wireVarint:
			f.value, n, err = readVarint(b)
			if err != nil {
				return nil, err
			}
			b = b[n:]
		case wireBytes:
			size, n, err := readVarint(b)
			if err != nil || uint64(len(b)-n) < size {
				return nil, errors.New("bad length")
			}
			f.bytes = b[n : n+int(size)]
			b = b[n+int(size):]
		case wire64:
			if len(b) < 8 {
				return nil, errors.New("short fixed64")
			}
			b = b[8:]
		case wire32:
			if len(b) < 4 {
				return nil, errors.New("short fixed32")
			}
			b = b[4:]
		default:
			return nil, fmt.Errorf("wire type %d", f.wire)
		}
		out = append(out, f)
	}
	return out, nil
}

// int64s reads a repeated int64 field, packed (what proto3 writes) or not.
func int64s(f field) ([]int64, error) {
	if f.wire == wireVarint {
		return []int64{int64(f.value)}, nil
	}
	var out []int64
	b := f.bytes
	for len(b) > 0 {
		v, n, err := readVarint(b)
		if err != nil {
			return nil, err
		}
		out = append(out, int64(v))
		b = b[n:]
	}
	return out, nil
}

// --- Connect unary -----------------------------------------------------------------------------

type client struct {
	base  string
	token string
	http  *http.Client
	// What the last answer carried, so the caller can show the transport did its part.
	contentType     string
	contentEncoding string
}

type connectError struct {
	Status  int    `json:"status"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *connectError) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

func (c *client) call(procedure string, request []byte) ([]byte, error) {
	req, err := http.NewRequest(http.MethodPost, c.base+"/"+procedure, bytes.NewReader(request))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/proto")
	req.Header.Set("Connect-Protocol-Version", "1")
	req.Header.Set("Connect-Timeout-Ms", "30000")
	// Set by hand, as connect-go does: Go's transport then leaves the gzip body to us.
	req.Header.Set("Accept-Encoding", "gzip")
	req.Header.Set("User-Agent", "stackyard-grafanaclient connect-go-like")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body io.Reader = resp.Body
	if resp.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			return nil, err
		}
		body = zr
	}
	data, err := io.ReadAll(io.LimitReader(body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		e := &connectError{Status: resp.StatusCode}
		if json.Unmarshal(data, e) != nil || e.Code == "" {
			e.Code, e.Message = "unknown", strings.TrimSpace(string(data))
		}
		return nil, e
	}
	c.contentType = resp.Header.Get("Content-Type")
	c.contentEncoding = resp.Header.Get("Content-Encoding")
	if c.contentType != "application/proto" {
		// Grafana refuses anything else, application/octet-stream included.
		return nil, fmt.Errorf("%s answered Content-Type %q", procedure, c.contentType)
	}
	return data, nil
}

// --- the calls Grafana makes -------------------------------------------------------------------

func (c *client) profileTypes(start, end int64) ([]string, error) {
	var e encoder
	e.int64(1, start)
	e.int64(2, end)
	data, err := c.call("querier.v1.QuerierService/ProfileTypes", e.buf)
	if err != nil {
		return nil, err
	}
	top, err := fields(data)
	if err != nil {
		return nil, err
	}
	ids := []string{}
	for _, f := range top {
		if f.number != 1 { // repeated types.v1.ProfileType profile_types = 1
			continue
		}
		inner, err := fields(f.bytes)
		if err != nil {
			return nil, err
		}
		for _, g := range inner {
			if g.number == 1 { // string ID = 1
				ids = append(ids, string(g.bytes))
			}
		}
	}
	return ids, nil
}

func (c *client) labelNames(matcher string, start, end int64) ([]string, error) {
	var e encoder
	e.string(1, matcher)
	e.int64(2, start)
	e.int64(3, end)
	data, err := c.call("querier.v1.QuerierService/LabelNames", e.buf)
	if err != nil {
		return nil, err
	}
	top, err := fields(data)
	if err != nil {
		return nil, err
	}
	names := []string{}
	for _, f := range top {
		if f.number == 1 {
			names = append(names, string(f.bytes))
		}
	}
	return names, nil
}

type flameGraph struct {
	Names   []string  `json:"names"`
	Levels  [][]int64 `json:"levels"`
	Total   int64     `json:"total"`
	MaxSelf int64     `json:"maxSelf"`
}

func (c *client) selectMergeStacktraces(profileType, selector string, start, end, maxNodes int64) (*flameGraph, error) {
	var e encoder
	e.string(1, profileType)
	e.string(2, selector)
	e.int64(3, start)
	e.int64(4, end)
	e.tag(5, wireVarint) // optional int64 max_nodes = 5: sent even when zero
	e.varint(uint64(maxNodes))
	data, err := c.call("querier.v1.QuerierService/SelectMergeStacktraces", e.buf)
	if err != nil {
		return nil, err
	}
	top, err := fields(data)
	if err != nil {
		return nil, err
	}
	graph := &flameGraph{Names: []string{}, Levels: [][]int64{}}
	for _, f := range top {
		if f.number != 1 { // FlameGraph flamegraph = 1
			continue
		}
		inner, err := fields(f.bytes)
		if err != nil {
			return nil, err
		}
		for _, g := range inner {
			switch g.number {
			case 1:
				graph.Names = append(graph.Names, string(g.bytes))
			case 2: // repeated Level levels = 2; Level{repeated int64 values = 1}
				level := []int64{}
				values, err := fields(g.bytes)
				if err != nil {
					return nil, err
				}
				for _, v := range values {
					if v.number == 1 {
						got, err := int64s(v)
						if err != nil {
							return nil, err
						}
						level = append(level, got...)
					}
				}
				graph.Levels = append(graph.Levels, level)
			case 3:
				graph.Total = int64(g.value)
			case 4:
				graph.MaxSelf = int64(g.value)
			}
		}
	}
	return graph, nil
}

func main() {
	base := flag.String("url", "http://127.0.0.1:4180", "Stackyard's base URL (the data source URL)")
	token := flag.String("token", "", "API token with the read scope")
	start := flag.Int64("start", 0, "range start, Unix milliseconds")
	end := flag.Int64("end", 0, "range end, Unix milliseconds")
	profileType := flag.String("type", "process_cpu:cpu:nanoseconds:cpu:nanoseconds", "profile type ID")
	selector := flag.String("selector", "{}", "label selector")
	maxNodes := flag.Int64("max-nodes", 16384, "flame graph node limit, as the data source sends it")
	flag.Parse()

	c := &client{base: strings.TrimRight(*base, "/"), token: *token, http: &http.Client{Timeout: 60 * time.Second}}
	out := map[string]interface{}{}
	fail := func(err error) {
		var ce *connectError
		if errors.As(err, &ce) {
			json.NewEncoder(os.Stdout).Encode(map[string]interface{}{"error": ce})
		} else {
			fmt.Fprintln(os.Stderr, err)
		}
		os.Exit(1)
	}
	saveAndTest, err := c.profileTypes(1000, 4000)
	if err != nil {
		fail(err)
	}
	out["saveAndTest"] = saveAndTest
	types, err := c.profileTypes(*start, *end)
	if err != nil {
		fail(err)
	}
	out["profileTypes"] = types
	names, err := c.labelNames(fmt.Sprintf("{__profile_type__=%q}", *profileType), *start, *end)
	if err != nil {
		fail(err)
	}
	out["labelNames"] = names
	graph, err := c.selectMergeStacktraces(*profileType, *selector, *start, *end, *maxNodes)
	if err != nil {
		fail(err)
	}
	out["flamegraph"] = graph
	out["contentType"] = c.contentType
	out["contentEncoding"] = c.contentEncoding
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fail(err)
	}
}
