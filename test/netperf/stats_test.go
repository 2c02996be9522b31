package main

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSpreadOf(t *testing.T) {
	tests := []struct {
		name string
		in   []float64
		want Spread
		ok   bool
	}{
		{"empty", nil, Spread{}, false},
		{"only NaN", []float64{math.NaN()}, Spread{}, false},
		{"one", []float64{4}, Spread{N: 1, Median: 4, Min: 4, Max: 4}, true},
		{"odd", []float64{3, 1, 2}, Spread{N: 3, Median: 2, Min: 1, Max: 3}, true},
		{"even", []float64{4, 1, 3, 2}, Spread{N: 4, Median: 2.5, Min: 1, Max: 4}, true},
		{"NaN ignored", []float64{5, math.NaN(), 1, math.Inf(1)}, Spread{N: 2, Median: 3, Min: 1, Max: 5}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := spreadOf(tt.in)
			require.Equal(t, tt.ok, ok)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestQuantile(t *testing.T) {
	v := make([]float64, 101)
	for i := range v {
		v[100-i] = float64(i) // unsorted on purpose
	}
	tests := []struct {
		q, want float64
	}{{0, 0}, {0.5, 50}, {0.99, 99}, {1, 100}, {0.995, 99.5}}
	for _, tt := range tests {
		require.InDelta(t, tt.want, quantile(v, tt.q), 1e-9, "q=%v", tt.q)
	}
	require.True(t, math.IsNaN(quantile(nil, 0.5)))
}

func TestRatio(t *testing.T) {
	tests := []struct {
		name string
		a, b float64
		want *float64
	}{
		{"plain", 3, 2, ptr(1.5)},
		{"zero reference", 3, 0, nil},
		{"missing reference", 3, math.NaN(), nil},
		{"missing value", math.NaN(), 2, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, ratio(tt.a, tt.b))
		})
	}
}

func ptr(f float64) *float64 { return &f }
