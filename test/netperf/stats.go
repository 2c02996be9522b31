package main

import (
	"math"
	"sort"
	"time"
)

// Spread is the median and the min–max range of a set of samples.
type Spread struct {
	N      int     `json:"n"`
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

// spreadOf summarises samples; NaNs are ignored. ok is false when nothing is left.
func spreadOf(samples []float64) (s Spread, ok bool) {
	v := finite(samples)
	if len(v) == 0 {
		return Spread{}, false
	}
	sort.Float64s(v)
	return Spread{N: len(v), Median: quantileSorted(v, 0.5), Min: v[0], Max: v[len(v)-1]}, true
}

// quantile returns the q-quantile (0..1) of samples by linear interpolation between
// closest ranks; NaN for no samples.
func quantile(samples []float64, q float64) float64 {
	v := finite(samples)
	if len(v) == 0 {
		return math.NaN()
	}
	sort.Float64s(v)
	return quantileSorted(v, q)
}

func quantileSorted(v []float64, q float64) float64 {
	if len(v) == 1 {
		return v[0]
	}
	pos := q * float64(len(v)-1)
	lo := int(math.Floor(pos))
	hi := int(math.Ceil(pos))
	frac := pos - float64(lo)
	return v[lo] + (v[hi]-v[lo])*frac
}

// ratio is a/b, or nil when either is missing or b is zero.
func ratio(a, b float64) *float64 {
	if b == 0 || math.IsNaN(a) || math.IsNaN(b) || math.IsInf(a, 0) || math.IsInf(b, 0) {
		return nil
	}
	r := a / b
	return &r
}

func finite(samples []float64) []float64 {
	out := make([]float64, 0, len(samples))
	for _, x := range samples {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			out = append(out, x)
		}
	}
	return out
}

func durationsMicros(d []time.Duration) []float64 {
	out := make([]float64, len(d))
	for i, x := range d {
		out[i] = float64(x) / float64(time.Microsecond)
	}
	return out
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
