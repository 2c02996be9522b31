package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// A trimmed iperf3 3.12 --json client output (TCP).
const iperfTCPJSON = `{"start":{"timestamp":{"time":"Fri, 27 Nov 2026 04:31:14 GMT","timesecs":1795753874}},
 "end":{"sum_sent":{"seconds":1.000249,"bytes":2014969856,"bits_per_second":16115746027.2,"retransmits":622},
        "sum_received":{"seconds":1.002079,"bytes":2013659136,"bits_per_second":16075851392.95405}}}`

// A trimmed UDP one: loss comes from end.sum, throughput from end.sum_received.
const iperfUDPJSON = `{"start":{"timestamp":{"timesecs":1795753880}},
 "end":{"sum":{"bytes":124931992,"lost_percent":0.4925},
        "sum_received":{"seconds":1.000287,"bytes":124316592,"bits_per_second":994247386.99}}}`

func TestParseIperf(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    IperfRun
		wantErr string
	}{
		{"tcp", iperfTCPJSON, IperfRun{TimeSecs: 1795753874, Bytes: 2013659136, Seconds: 1.002079, BitsPerSecond: 16075851392.95405, Retransmits: 622}, ""},
		{"udp", iperfUDPJSON, IperfRun{TimeSecs: 1795753880, Bytes: 124316592, Seconds: 1.000287, BitsPerSecond: 994247386.99, LostPercent: 0.4925}, ""},
		{"error", `{"start":{},"end":{},"error":"unable to connect to server"}`, IperfRun{}, "unable to connect"},
		{"nothing moved", `{"start":{},"end":{"sum_received":{"seconds":1,"bytes":0,"bits_per_second":0}}}`, IperfRun{}, "moved nothing"},
		{"not json", `iperf3: error`, IperfRun{}, "parse iperf3 json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseIperf([]byte(tt.in))
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, *got)
		})
	}
}

func TestParseOVSStatistics(t *testing.T) {
	tests := []struct {
		in      string
		want    counters
		wantErr bool
	}{
		{`{collisions=0, rx_bytes=1234, rx_crc_err=0, rx_packets=10, tx_bytes=99, tx_packets=2}`, counters{RxBytes: 1234, TxBytes: 99, RxPackets: 10, TxPackets: 2}, false},
		{`{}`, counters{}, false},
		{`rx_bytes=1`, counters{}, true},
		{`{rx_bytes=x}`, counters{}, true},
	}
	for _, tt := range tests {
		got, err := parseOVSStatistics(tt.in)
		if tt.wantErr {
			require.Error(t, err, tt.in)
			continue
		}
		require.NoError(t, err, tt.in)
		require.Equal(t, tt.want, got)
	}
}

func TestJudgeOVSCounters(t *testing.T) {
	before := counters{RxBytes: 1000, TxBytes: 1000}
	const moved = 1_000_000
	tests := []struct {
		name  string
		fast  bool
		after counters
		ok    bool
	}{
		{"fast, flat", true, counters{RxBytes: 1000, TxBytes: 1000}, true},
		{"fast, some ARP", true, counters{RxBytes: 1500, TxBytes: 1500}, true},
		{"fast, traffic through OVS", true, counters{RxBytes: 1000 + moved, TxBytes: 1000 + moved}, false},
		{"ovs, traffic through OVS", false, counters{RxBytes: 1000 + moved + 5000, TxBytes: 1000 + moved}, true},
		{"ovs, bypassed", false, counters{RxBytes: 2000, TxBytes: 2000}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			desc, err := judgeOVSCounters(tt.fast, before, tt.after, moved)
			require.NotEmpty(t, desc)
			if tt.ok {
				require.NoError(t, err)
			} else {
				require.Error(t, err)
			}
		})
	}
}

func TestReadEnvFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "env")
	require.NoError(t, os.WriteFile(p, []byte("# comment\nSDNCNI_OVS_DB=unix:/x/db.sock\nexport SDNCNI_BRIDGE=\"br-int\"\n\nexport A B\n"), 0o644))
	vars, err := readEnvFile(p)
	require.NoError(t, err)
	require.Equal(t, "unix:/x/db.sock", vars["SDNCNI_OVS_DB"])
	require.Equal(t, "br-int", vars["SDNCNI_BRIDGE"])
}

func TestParseFlags(t *testing.T) {
	o, err := parseFlags([]string{"--quick", "--cases", "veth, bridge", "--out", "/tmp/x",
		"--controller-arg=--tunnel-tx-offload=on", "--controller-arg", "-v=1"})
	require.NoError(t, err)
	require.Equal(t, []string{"--tunnel-tx-offload=on", "-v=1"}, o.ControllerArgs)
	require.Equal(t, []string{"veth", "bridge"}, o.Cases)
	require.Equal(t, 3, o.Rounds)
	require.NoError(t, o.validate())
	o.Cases = []string{"nope"}
	require.ErrorContains(t, o.validate(), "unknown case")
	o.Cases = []string{caseUnderlay}
	o.CrossNodeFast = "maybe"
	require.ErrorContains(t, o.validate(), "--cross-node-fast")
	o, err = parseFlags([]string{"--rounds", "2"})
	require.NoError(t, err)
	require.ErrorContains(t, o.validate(), "at least 3 rounds")
}

func TestParseDumpPorts(t *testing.T) {
	const out = `OFPST_PORT reply (OF1.3) (xid=0x2): 3 ports
  port LOCAL: rx pkts=1, bytes=70, drop=0, errs=0, frame=0, over=0, crc=0
           tx pkts=2, bytes=140, drop=0, errs=0, coll=0
           duration=8.674s
  port  1: rx pkts=10, bytes=1000, drop=0, errs=0, frame=0, over=0, crc=0
           tx pkts=20, bytes=2000, drop=?, errs=?, coll=?
           duration=8.644s
  port  "p2": rx pkts=100, bytes=10000, drop=0, errs=0, frame=?, over=?, crc=?
           tx pkts=200, bytes=20000, drop=0, errs=0, coll=0
           duration=1.000s
`
	got, err := parseDumpPorts(out)
	require.NoError(t, err)
	require.Equal(t, counters{RxPackets: 111, RxBytes: 11070, TxPackets: 222, TxBytes: 22140}, got)
	_, err = parseDumpPorts("ovs-ofctl: unix:/x: failed to connect")
	require.Error(t, err)
}
