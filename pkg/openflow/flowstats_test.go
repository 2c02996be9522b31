package openflow

import (
	"context"
	"encoding/binary"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fakeSwitch answers one session on conn: HELLO, an echo request of its own, then per
// flow-stats request the flows of its cookie, split over two replies.
func fakeSwitch(t *testing.T, conn net.Conn, helloVersion uint8, flows map[uint64][][]byte) {
	t.Helper()
	defer conn.Close()
	s := &session{rw: conn}
	write := func(typ uint8, xid uint32, body []byte) {
		msg := make([]byte, headerLen, headerLen+len(body))
		msg[0], msg[1] = helloVersion, typ
		binary.BigEndian.PutUint16(msg[2:], uint16(headerLen+len(body)))
		binary.BigEndian.PutUint32(msg[4:], xid)
		if _, err := conn.Write(append(msg, body...)); err != nil {
			t.Errorf("fake switch write: %v", err)
		}
	}
	if _, typ, _, _, err := s.recv(); err != nil || typ != typeHello {
		t.Errorf("fake switch: want hello, got type %d, %v", typ, err)
		return
	}
	write(typeHello, 1, nil)
	write(typeEchoRequest, 77, []byte("ping"))
	for {
		_, typ, xid, body, err := s.recv()
		if err != nil {
			return // the client closed
		}
		switch typ {
		case typeEchoReply:
			if xid != 77 || string(body) != "ping" {
				t.Errorf("fake switch: echo reply xid %d body %q, want 77 \"ping\"", xid, body)
			}
			continue
		case typeMultipartReq:
		default:
			t.Errorf("fake switch: unexpected type %d", typ)
			return
		}
		cookie := binary.BigEndian.Uint64(body[8+16:])
		if cookie == 0xbad {
			write(typeError, xid, []byte{0, 1, 0, 2})
			continue
		}
		fs := flows[cookie]
		for i := 0; i < 2; i++ {
			part := []byte{0, multipartFlow, 0, 0, 0, 0, 0, 0}
			if i == 0 {
				part[3] = multipartReplyMore
			}
			for j, f := range fs {
				if j%2 == i {
					part = append(part, f...)
				}
			}
			write(typeMultipartReply, xid, part)
		}
	}
}

// flowStats encodes one ofp_flow_stats with a match of matchLen bytes (padded to 8).
func flowStats(table uint8, prio uint16, cookie, packets uint64, secs uint32, match byte, matchLen int) []byte {
	padded := (matchLen + 7) / 8 * 8
	b := make([]byte, flowStatsFixed+padded+8) // and one 8-byte instruction
	binary.BigEndian.PutUint16(b, uint16(len(b)))
	b[2] = table
	binary.BigEndian.PutUint32(b[4:], secs)
	binary.BigEndian.PutUint16(b[12:], prio)
	binary.BigEndian.PutUint64(b[24:], cookie)
	binary.BigEndian.PutUint64(b[32:], packets)
	binary.BigEndian.PutUint16(b[flowStatsFixed:], 1)
	binary.BigEndian.PutUint16(b[flowStatsFixed+2:], uint16(matchLen))
	for i := flowStatsFixed + 4; i < flowStatsFixed+matchLen; i++ {
		b[i] = match
	}
	return b
}

func TestFlowsByCookie(t *testing.T) {
	flows := map[uint64][][]byte{
		0x1: {flowStats(46, 11000, 0x1, 5, 3, 0xaa, 12), flowStats(46, 11000, 0x1, 7, 3, 0xbb, 20), flowStats(25, 11000, 0x1, 0, 1, 0xcc, 4)},
		0x2: {flowStats(25, 11000, 0x2, 9, 2, 0xdd, 12)},
	}
	run := func(t *testing.T, version uint8, cookies []uint64) ([]Flow, error) {
		sock := filepath.Join(t.TempDir(), "br-int.mgmt")
		l, err := net.Listen("unix", sock)
		require.NoError(t, err)
		defer l.Close()
		done := make(chan struct{})
		go func() {
			defer close(done)
			if conn, err := l.Accept(); err == nil {
				fakeSwitch(t, conn, version, flows)
			}
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		out, err := Client{Socket: sock}.FlowsByCookie(ctx, cookies)
		<-done
		return out, err
	}

	got, err := run(t, version13, []uint64{0x1, 0x2, 0x3})
	require.NoError(t, err)
	require.Len(t, got, 4, "every flow of both cookies, over replies marked 'more'")
	byMatch := map[string]Flow{}
	for _, f := range got {
		byMatch[f.Match] = f
	}
	require.Len(t, byMatch, 4, "matches tell the flows apart")
	var sum1, sum2 uint64
	for _, f := range got {
		require.Equal(t, uint16(11000), f.Priority)
		switch f.Cookie {
		case 0x1:
			sum1 += f.Packets
		case 0x2:
			sum2 += f.Packets
			require.Equal(t, uint8(25), f.Table)
			require.Equal(t, 2*time.Second, f.Duration)
		}
	}
	require.Equal(t, uint64(12), sum1)
	require.Equal(t, uint64(9), sum2)

	_, err = run(t, version13, []uint64{0xbad})
	var oe *Error
	require.ErrorAs(t, err, &oe)
	require.Equal(t, Error{Type: 1, Code: 2}, *oe)

	_, err = run(t, 0x01, []uint64{0x1})
	require.ErrorIs(t, err, ErrVersion)
}

func TestParseFlowStatsRejectsTruncated(t *testing.T) {
	b := flowStats(1, 1, 1, 1, 1, 0xaa, 12)
	_, err := parseFlowStats(b[:len(b)-1])
	require.Error(t, err)
	binary.BigEndian.PutUint16(b[flowStatsFixed+2:], 200) // match longer than the entry
	_, err = parseFlowStats(b)
	require.Error(t, err)
}
