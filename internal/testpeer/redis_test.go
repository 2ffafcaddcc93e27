package testpeer

import "testing"

// TestRedis: the server answers, stops, and a restart on its port in the
// same folder with AOF still answers.
func TestRedis(t *testing.T) {
	dir := t.TempDir()
	r := StartRedis(t, RedisOptions{Dir: dir, AOF: true})
	if err := redisPing(r.Addr); err != nil {
		t.Fatal(err)
	}
	port := r.Addr[len("127.0.0.1:"):]
	r.Stop()
	if redisPing(r.Addr) == nil {
		t.Fatal("redis still answers after Stop")
	}
	var p int
	for _, c := range port {
		p = p*10 + int(c-'0')
	}
	again := StartRedis(t, RedisOptions{Dir: dir, AOF: true, Port: p})
	if err := redisPing(again.Addr); err != nil {
		t.Fatal(err)
	}
}
