package webrtcbridge

import (
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun/v4"
)

type sent struct {
	pkt []byte
	dst netip.AddrPort
}

func check(t *testing.T, user, pwd string, nominate bool) []byte {
	t.Helper()
	setters := []stun.Setter{stun.TransactionID, stun.BindingRequest, stun.NewUsername(user)}
	if nominate {
		setters = append(setters, stun.RawAttribute{Type: stun.AttrUseCandidate})
	}
	setters = append(setters, stun.NewShortTermIntegrity(pwd), stun.Fingerprint)
	m, err := stun.Build(setters...)
	if err != nil {
		t.Fatal(err)
	}
	return m.Raw
}

// TestTransportICERestart: after SetICE with new credentials on both sides,
// checks with the old ones are dropped and checks with the new ones are
// answered (integrity by the new local password) from the party's new
// address, which the first such check latches even without USE-CANDIDATE;
// as the controlling agent the transport checks the new candidates with the
// new username at once.
func TestTransportICERestart(t *testing.T) {
	out := make(chan sent, 1024)
	const (
		lu1, lp1 = "loc1", "localpassword1localpass"
		ru1, rp1 = "rem1", "remotepassword1remotepa"
		lu2, lp2 = "loc2", "localpassword2localpass"
		ru2, rp2 = "rem2", "remotepassword2remotepa"
	)
	old := netip.MustParseAddrPort("127.0.0.1:40001")
	moved := netip.MustParseAddrPort("127.0.0.1:40002")
	x, err := NewTransport(TransportConfig{
		Send: func(p []byte, dst netip.AddrPort) {
			select {
			case out <- sent{append([]byte(nil), p...), dst}:
			default:
			}
		},
		ICE: &ICEParams{LocalUfrag: lu1, LocalPwd: lp1, RemoteUfrag: ru1, RemotePwd: rp1, Controlling: true, Remote: []netip.AddrPort{old}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	// answered waits for the response to a check sent to dst, with the
	// integrity of pwd.
	answered := func(dst netip.AddrPort, pwd string) {
		t.Helper()
		deadline := time.After(5 * time.Second)
		for {
			select {
			case s := <-out:
				m := &stun.Message{Raw: s.pkt}
				if s.dst == dst && m.Decode() == nil && m.Type == stun.BindingSuccess {
					if err := stun.NewShortTermIntegrity(pwd).Check(m); err != nil {
						t.Fatalf("response to %v: %v", dst, err)
					}
					return
				}
			case <-deadline:
				t.Fatalf("no response to %v", dst)
			}
		}
	}
	if _, v := x.Inbound(check(t, lu1+":"+ru1, lp1, true), old); v != Latch {
		t.Fatalf("first check: verdict %v", v)
	}
	answered(old, lp1)

	x.SetICE(lu2, lp2, ru2, rp2, []netip.AddrPort{moved})
	if _, v := x.Inbound(check(t, lu1+":"+ru1, lp1, true), old); v != Dropped {
		t.Errorf("check with the old credentials after the restart: verdict %v", v)
	}
	if _, v := x.Inbound(check(t, lu2+":"+ru2, lp2, false), moved); v != Latch {
		t.Errorf("first check with the new credentials: verdict %v, want Latch", v)
	}
	answered(moved, lp2)
	if n := x.Checks.Load(); n != 2 {
		t.Errorf("checks answered: %d, want 2", n)
	}
	// Our own checks go to the new candidate with the new username.
	deadline := time.After(5 * time.Second)
	for {
		select {
		case s := <-out:
			m := &stun.Message{Raw: s.pkt}
			var user stun.Username
			if s.dst == moved && m.Decode() == nil && m.Type == stun.BindingRequest && user.GetFrom(m) == nil {
				if string(user) != ru2+":"+lu2 || stun.NewShortTermIntegrity(rp2).Check(m) != nil {
					t.Fatalf("check to the new candidate: user %q", user)
				}
				return
			}
		case <-deadline:
			t.Fatal("no check to the new candidate")
		}
	}
}

// TestControlledAgentChecks: a full ICE agent that is controlled (the
// party offered) checks the party's candidates too, with ICE-CONTROLLED
// and without USE-CANDIDATE (RFC 8445 §7.2.4); the success of its own
// check does not move a nomination the party made; an ICE-lite agent sends
// no checks at all.
func TestControlledAgentChecks(t *testing.T) {
	const lu, lp, ru, rp = "locc", "localpasswordlocalpassw", "remc", "remotepasswordremotepas"
	nominated := netip.MustParseAddrPort("127.0.0.1:40011")
	other := netip.MustParseAddrPort("127.0.0.1:40012")
	for _, lite := range []bool{false, true} {
		out := make(chan sent, 1024)
		x, err := NewTransport(TransportConfig{
			Send: func(p []byte, dst netip.AddrPort) {
				select {
				case out <- sent{append([]byte(nil), p...), dst}:
				default:
				}
			},
			ICE: &ICEParams{LocalUfrag: lu, LocalPwd: lp, RemoteUfrag: ru, RemotePwd: rp, Lite: lite,
				Remote: []netip.AddrPort{nominated, other}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if lite {
			time.Sleep(150 * time.Millisecond) // three check intervals: nothing may go out
			x.Close()
			if len(out) != 0 {
				t.Errorf("ICE-lite sent %d packets", len(out))
			}
			continue
		}
		var ours *stun.Message
		deadline := time.After(5 * time.Second)
		for ours == nil {
			select {
			case s := <-out:
				m := &stun.Message{Raw: s.pkt}
				if s.dst == other && m.Decode() == nil && m.Type == stun.BindingRequest {
					ours = m
				}
			case <-deadline:
				t.Fatal("the controlled full agent sent no check")
			}
		}
		if !ours.Contains(stun.AttrICEControlled) || ours.Contains(stun.AttrICEControlling) || ours.Contains(stun.AttrUseCandidate) {
			t.Errorf("controlled check: controlled %v, controlling %v, use-candidate %v", ours.Contains(stun.AttrICEControlled),
				ours.Contains(stun.AttrICEControlling), ours.Contains(stun.AttrUseCandidate))
		}
		if stun.NewShortTermIntegrity(rp).Check(ours) != nil {
			t.Error("controlled check: integrity not by the party's password")
		}
		// The party nominates one address; our check's success from the
		// other checks that pair but moves nothing.
		if _, v := x.Inbound(check(t, lu+":"+ru, lp, true), nominated); v != Latch {
			t.Fatalf("the party's nomination: verdict %v", v)
		}
		resp, err := stun.Build(stun.NewTransactionIDSetter(ours.TransactionID), stun.BindingSuccess,
			stun.NewShortTermIntegrity(rp), stun.Fingerprint)
		if err != nil {
			t.Fatal(err)
		}
		if _, v := x.Inbound(resp.Raw, other); v != Consumed {
			t.Errorf("success of our check while the party's nomination stands: verdict %v, want Consumed", v)
		}
		if got := x.Nominated(); got != nominated {
			t.Errorf("nominated %v, want the party's %v", got, nominated)
		}
		x.Close()
	}
}
