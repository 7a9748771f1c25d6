package harness

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// ParseMetrics reads a Prometheus text page into series → value, keyed as
// the page writes them: the name alone for an unlabelled series,
// name{label="v",...} for a labelled one.
func ParseMetrics(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			return nil, fmt.Errorf("metrics line %q has no value", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: %w", line, err)
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read metrics: %w", err)
	}
	return out, nil
}

// Scrape fetches url (a /metrics page) and parses it.
func Scrape(ctx context.Context, url string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: %s", url, resp.Status)
	}
	m, err := ParseMetrics(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	return m, nil
}

// Metric fetches url and returns one series (as ParseMetrics keys it).
func Metric(ctx context.Context, url, series string) (float64, error) {
	m, err := Scrape(ctx, url)
	if err != nil {
		return 0, err
	}
	v, ok := m[series]
	if !ok {
		return 0, fmt.Errorf("%s not in %s", series, url)
	}
	return v, nil
}

// MustScrape is Scrape for a test: it fails the test when the page cannot
// be read.
func MustScrape(t TB, url string) map[string]float64 {
	t.Helper()
	m, err := Scrape(context.Background(), url)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return m
}

// Series returns one series of a scraped page m, failing the test when the
// page does not have it; the failure lists the series of the same name it
// does have, which tells a wrong label from a missing metric.
func Series(t TB, m map[string]float64, key string) float64 {
	t.Helper()
	v, ok := m[key]
	if !ok {
		var near []string
		name, _, _ := strings.Cut(key, "{")
		for k := range m {
			if strings.HasPrefix(k, name) {
				near = append(near, k)
			}
		}
		slices.Sort(near)
		t.Fatalf("series %s not exposed; have %v", key, near)
	}
	return v
}
