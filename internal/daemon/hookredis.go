package daemon

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/rtcgate/rtcgate/internal/config"
	"github.com/rtcgate/rtcgate/internal/hooks/eventq"
)

// openRedisQueue puts the hook queue and its dead letters in the
// cluster's Redis (eventq.Redis). The consumer name is node-id plus the
// pid and a random suffix: unique even for several nodes on one host, and
// never reused by a restart, whose predecessor's events are taken over as
// a dead node's.
func (d *Daemon) openRedisQueue(cfg *config.Config, nodeID string, log *slog.Logger) error {
	c := d.Cluster.Redis() // the cluster's one client: Sentinel too; the cluster closes it
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var suffix [3]byte
	rand.Read(suffix[:])
	consumer := fmt.Sprintf("%s/%d-%x", nodeID, os.Getpid(), suffix)
	// Redis down: the store starts anyway and keeps events in memory
	// (within hooks-queue-max-bytes) until a heartbeat reaches Redis.
	st, err := eventq.OpenRedis(ctx, eventq.RedisOptions{Client: c, Consumer: consumer,
		ClaimAfter: cfg.HooksRedisClaimAfter.D(), MaxBytes: int64(cfg.HooksQueueMaxBytes),
		SpillBytes: int64(cfg.HooksQueueMaxBytes), Log: log})
	if err != nil {
		return err
	}
	d.hookStore = st
	dctx := ctx
	if !st.Ready() { // Redis down: do not wait for it a second time
		var dcancel context.CancelFunc
		dctx, dcancel = context.WithCancel(ctx)
		dcancel()
	}
	dead, err := eventq.OpenRedisDeadLetters(dctx, c, "", int64(cfg.HooksDeadLetterMaxBytes))
	if err != nil && dead != nil {
		log.Warn("hook dead letters in Redis not loaded: Redis unreachable; those kept there are listed after a restart", "err", err)
	} else if err != nil {
		st.Close()
		return err
	}
	d.hookDead = dead
	log.Info("hook queue in Redis", "consumer", consumer)
	return nil
}
