package eventq

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// On-disk format.
//
// dir holds segment files named seg-<16 hex digits>.log, numbered upwards;
// the highest is the active one, the only one written. A segment is
//
//	header:  "RTCQSEG1" (8 bytes) | next ID at creation (uint64 LE)
//	records: length (uint32 LE) | CRC-32C of length and payload (uint32 LE) | payload
//
// and a payload is one of
//
//	append: 0x01 | id (uint64 LE) | enqueued unix ns (int64 LE) |
//	        key, app, method, body (each uvarint length + bytes)
//	ack:    0x02 | id (uint64 LE)
//	dead:   0x03 | the append fields | dead-lettered unix ns (int64 LE) |
//	        attempts (uvarint) | reason (uvarint length + bytes)
//
// A dead record is an event given up on, with when, after how many attempts
// and why: the dead-letter store (DeadLetters) is a Disk of its own in the
// queue directory's "dead" subdirectory, whose events are dead records
// (any Event with DeadAt set is written as one), acked when an operator
// replays or removes them, or when the dead-letter bound evicts them.
//
// Beside the segments, a file "origin" holds a random name (hex) written at
// the first open: the events' Origin, so that an id is never reused, even
// by a directory wiped and started again (Event.UID).
//
// The header's next ID keeps IDs increasing across restarts even after every
// segment holding events was deleted. Pending = appended − acked; an event
// can be appended twice (compaction copies it forward) and the latest copy
// wins. At open, the first record in a segment that is short, fails its CRC
// or does not decode ends that segment: the file is truncated there (a crash
// mid-write leaves exactly such a torn tail). Reading then goes on with the
// next segment, which has its own framing.
const (
	segMagic     = "RTCQSEG1"
	headerSize   = 16
	frameHeader  = 8
	recAppend    = 1
	recAck       = 2
	recDead      = 3
	maxRecord    = 64 << 20
	minSegBytes  = 4 << 10
	maxSegBytes  = 64 << 20
	groupWaiters = 64 // appenders waiting that trigger a sync before the tick
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type segment struct {
	seq     uint64
	path    string
	size    int64
	pending int // live (unacked, latest-copy) append records in this file
}

type diskEntry struct {
	seg  *segment
	off  int64 // frame offset in seg
	size int64 // frame size, counted against maxBytes
}

// Disk is a durable Store: an append-only log of CRC-checked records in
// segment files, with group commit. See the format comment above.
//
// Append returns once the batch holding its record is fsynced: a sync runs
// every syncEvery, or at once when 64 appenders are waiting (or on every
// Append when syncEvery ≤ 0, where concurrent appenders still share the
// fsyncs that overlap them). Ack does not wait for a sync: losing an ack in
// a crash only means one more delivery, which at-least-once allows.
//
// The bound is maxBytes of pending records (framing included); Append
// returns ErrFull beyond it. Segments roll over at maxBytes/4 (clamped to
// 4 KiB…64 MiB). Compaction deletes the oldest sealed segment once all its
// events are acked; when two or more sealed segments remain after a roll
// over, the oldest one's pending events are copied into the active segment,
// synced, and the old file deleted, so that one stuck event cannot pin the
// disk. Only the oldest segment is ever deleted, because its ack records
// can refer only to events in itself.
type Disk struct {
	dir       string
	origin    string
	maxBytes  int64
	syncEvery time.Duration
	segBytes  int64

	mu        sync.Mutex
	cond      *sync.Cond // appenders wait here for their batch's sync
	segs      []*segment // oldest first; the last is active
	f         *os.File   // active segment
	retired   []*os.File // rolled-over files the syncer still has to sync and close
	entries   map[uint64]*diskEntry
	nextID    uint64
	pending   int64 // bytes of pending records
	written   uint64
	synced    uint64
	waiters   int
	err       error // sticky: after a failed write or sync the log tail is unknown
	closed    bool
	truncated int64
	syncs     int // fsync batches, for tests

	kick chan struct{}
	done chan struct{}
	wg   sync.WaitGroup
}

// OpenDisk opens (creating) the queue directory dir, loads it, repairing a
// torn tail, and starts a new active segment. maxBytes bounds pending data
// (≤0 means 64 MiB); syncEvery is the group-commit interval.
func OpenDisk(dir string, maxBytes int64, syncEvery time.Duration) (*Disk, error) {
	if maxBytes <= 0 {
		maxBytes = 64 << 20
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	d := &Disk{
		dir:       dir,
		maxBytes:  maxBytes,
		syncEvery: syncEvery,
		segBytes:  min(max(maxBytes/4, minSegBytes), maxSegBytes),
		entries:   make(map[uint64]*diskEntry),
		nextID:    1,
		kick:      make(chan struct{}, 1),
		done:      make(chan struct{}),
	}
	d.cond = sync.NewCond(&d.mu)
	origin, err := loadOrigin(dir)
	if err != nil {
		return nil, err
	}
	d.origin = origin
	if err := d.load(); err != nil {
		return nil, err
	}
	var seq uint64 = 1
	if n := len(d.segs); n > 0 {
		seq = d.segs[n-1].seq + 1
	}
	if err := d.newSegment(seq); err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.compact(false)
	err = d.err
	d.mu.Unlock()
	if err != nil {
		d.f.Close()
		return nil, err
	}
	d.wg.Add(1)
	go d.syncer()
	return d, nil
}

// loadOrigin reads the directory's origin file, writing a new one first
// when there is none (or it is not what it should be).
func loadOrigin(dir string) (string, error) {
	path := filepath.Join(dir, "origin")
	if b, err := os.ReadFile(path); err == nil {
		if s := strings.TrimSpace(string(b)); len(s) == 16 {
			if _, err := strconv.ParseUint(s, 16, 64); err == nil {
				return s, nil
			}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	o := newOrigin()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(o+"\n"), 0o640); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", err
	}
	return o, nil
}

func segName(seq uint64) string { return fmt.Sprintf("seg-%016x.log", seq) }

func (d *Disk) load() error {
	des, err := os.ReadDir(d.dir)
	if err != nil {
		return err
	}
	var seqs []uint64
	for _, de := range des {
		n := de.Name()
		if !de.Type().IsRegular() || !strings.HasPrefix(n, "seg-") || !strings.HasSuffix(n, ".log") {
			continue
		}
		s, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(n, "seg-"), ".log"), 16, 64)
		if err != nil || segName(s) != n {
			continue
		}
		seqs = append(seqs, s)
	}
	slices.Sort(seqs)
	for _, s := range seqs {
		seg := &segment{seq: s, path: filepath.Join(d.dir, segName(s))}
		data, err := os.ReadFile(seg.path)
		if err != nil {
			return err
		}
		if len(data) < headerSize {
			// Crash while creating the segment: nothing in it was ever
			// acknowledged to an appender.
			if !strings.HasPrefix(segMagic, string(data[:min(len(data), len(segMagic))])) {
				return fmt.Errorf("%w: %s: bad magic", ErrCorrupt, seg.path)
			}
			d.truncated += int64(len(data))
			if err := os.Remove(seg.path); err != nil {
				return err
			}
			continue
		}
		if string(data[:len(segMagic)]) != segMagic {
			return fmt.Errorf("%w: %s: bad magic", ErrCorrupt, seg.path)
		}
		d.nextID = max(d.nextID, binary.LittleEndian.Uint64(data[8:16]))
		good := scanRecords(data, func(off int64, p []byte) bool {
			switch p[0] {
			case recAppend, recDead:
				id := binary.LittleEndian.Uint64(p[1:9])
				d.setEntry(id, &diskEntry{seg: seg, off: off, size: int64(frameHeader + len(p))})
			case recAck:
				d.dropEntry(binary.LittleEndian.Uint64(p[1:9]))
			}
			return true
		})
		if good < int64(len(data)) {
			d.truncated += int64(len(data)) - good
			if err := os.Truncate(seg.path, good); err != nil {
				return err
			}
		}
		seg.size = good
		d.segs = append(d.segs, seg)
	}
	return nil
}

// scanRecords calls fn for every valid record after the header and returns
// the offset where valid data ends. A payload is valid when it decodes, so
// fn sees only well-formed records.
func scanRecords(data []byte, fn func(off int64, payload []byte) bool) int64 {
	off := headerSize
	for off+frameHeader <= len(data) {
		n := binary.LittleEndian.Uint32(data[off:])
		if n == 0 || n > maxRecord || int(n) > len(data)-off-frameHeader {
			break
		}
		end := off + frameHeader + int(n)
		crc := crc32.Update(crc32.Checksum(data[off:off+4], castagnoli), castagnoli, data[off+frameHeader:end])
		if crc != binary.LittleEndian.Uint32(data[off+4:]) {
			break
		}
		p := data[off+frameHeader : end]
		if !validPayload(p) {
			break
		}
		if !fn(int64(off), p) {
			break
		}
		off = end
	}
	return int64(off)
}

func validPayload(p []byte) bool {
	switch {
	case len(p) == 9 && p[0] == recAck:
		return true
	case len(p) >= 17 && isEvent(p[0]):
		_, err := decodeAppend(p)
		return err == nil
	}
	return false
}

// isEvent reports whether a record type carries an event (append, dead).
func isEvent(t byte) bool { return t == recAppend || t == recDead }

// encodeAppend encodes e as an append record, or as a dead record when e
// has DeadAt set.
func encodeAppend(id uint64, e *Event) []byte {
	dead := !e.DeadAt.IsZero()
	n := 17 + 4*binary.MaxVarintLen32 + len(e.Key) + len(e.App) + len(e.Method) + len(e.Body)
	if dead {
		n += 8 + 2*binary.MaxVarintLen32 + len(e.Reason)
	}
	p := make([]byte, 0, n)
	p = append(p, recAppend)
	if dead {
		p[0] = recDead
	}
	p = binary.LittleEndian.AppendUint64(p, id)
	p = binary.LittleEndian.AppendUint64(p, uint64(e.Enqueued.UnixNano()))
	for _, s := range [][]byte{[]byte(e.Key), []byte(e.App), []byte(e.Method), e.Body} {
		p = binary.AppendUvarint(p, uint64(len(s)))
		p = append(p, s...)
	}
	if dead {
		p = binary.LittleEndian.AppendUint64(p, uint64(e.DeadAt.UnixNano()))
		p = binary.AppendUvarint(p, uint64(max(e.Attempts, 0)))
		p = binary.AppendUvarint(p, uint64(len(e.Reason)))
		p = append(p, e.Reason...)
	}
	return p
}

var errBadRecord = errors.New("eventq: bad record")

func decodeAppend(p []byte) (*Event, error) {
	if len(p) < 17 || !isEvent(p[0]) {
		return nil, errBadRecord
	}
	e := &Event{
		ID:       binary.LittleEndian.Uint64(p[1:9]),
		Enqueued: time.Unix(0, int64(binary.LittleEndian.Uint64(p[9:17]))),
	}
	rest := p[17:]
	var fields [4][]byte
	for i := range fields {
		n, k := binary.Uvarint(rest)
		if k <= 0 || n > uint64(len(rest)-k) {
			return nil, errBadRecord
		}
		fields[i] = rest[k : k+int(n)]
		rest = rest[k+int(n):]
	}
	if p[0] == recDead {
		if len(rest) < 8 {
			return nil, errBadRecord
		}
		e.DeadAt = time.Unix(0, int64(binary.LittleEndian.Uint64(rest)))
		rest = rest[8:]
		a, k := binary.Uvarint(rest)
		if k <= 0 || a > 1<<31 {
			return nil, errBadRecord
		}
		e.Attempts = int(a)
		rest = rest[k:]
		n, k := binary.Uvarint(rest)
		if k <= 0 || n != uint64(len(rest)-k) {
			return nil, errBadRecord
		}
		e.Reason = string(rest[k:])
		rest = nil
	}
	if len(rest) != 0 {
		return nil, errBadRecord
	}
	e.Key, e.App, e.Method = string(fields[0]), string(fields[1]), string(fields[2])
	e.Body = slices.Clone(fields[3])
	return e, nil
}

func frame(p []byte) []byte {
	b := make([]byte, frameHeader, frameHeader+len(p))
	binary.LittleEndian.PutUint32(b, uint32(len(p)))
	crc := crc32.Update(crc32.Checksum(b[:4], castagnoli), castagnoli, p)
	binary.LittleEndian.PutUint32(b[4:], crc)
	return append(b, p...)
}

func (d *Disk) setEntry(id uint64, ent *diskEntry) {
	d.dropEntry(id)
	d.entries[id] = ent
	ent.seg.pending++
	d.pending += ent.size
	if id >= d.nextID {
		d.nextID = id + 1
	}
}

func (d *Disk) dropEntry(id uint64) {
	if old, ok := d.entries[id]; ok {
		old.seg.pending--
		d.pending -= old.size
		delete(d.entries, id)
	}
	if id >= d.nextID {
		d.nextID = id + 1
	}
}

// newSegment creates segment seq and makes it active. The previous active
// file is handed to the syncer, which syncs it with the next batch and only
// then closes it, so a roll-over never closes a file under a running fsync.
// Caller holds d.mu (or is OpenDisk).
func (d *Disk) newSegment(seq uint64) error {
	seg := &segment{seq: seq, path: filepath.Join(d.dir, segName(seq)), size: headerSize}
	f, err := os.OpenFile(seg.path, os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	hdr := binary.LittleEndian.AppendUint64([]byte(segMagic), d.nextID)
	if _, err := f.Write(hdr); err != nil {
		f.Close()
		os.Remove(seg.path)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	// Best effort: makes the new name durable; a lost empty segment is harmless.
	syncDir(d.dir)
	if d.f != nil {
		d.retired = append(d.retired, d.f)
		d.written++
	}
	d.f = f
	d.segs = append(d.segs, seg)
	return nil
}

func syncDir(dir string) {
	if f, err := os.Open(dir); err == nil {
		f.Sync()
		f.Close()
	}
}

// write appends one framed record to the active segment, rolling over
// first when it would not fit. Caller holds d.mu.
func (d *Disk) write(p []byte) (*segment, int64, error) {
	active := d.segs[len(d.segs)-1]
	size := int64(frameHeader + len(p))
	if active.size+size > d.segBytes && active.size > headerSize {
		if err := d.newSegment(active.seq + 1); err != nil {
			d.err = err
			return nil, 0, err
		}
		d.compact(true)
		if d.err != nil {
			return nil, 0, d.err
		}
		active = d.segs[len(d.segs)-1]
	}
	off := active.size
	if _, err := d.f.Write(frame(p)); err != nil {
		d.err = err
		return nil, 0, err
	}
	active.size += size
	d.written++
	return active, off, nil
}

// compact deletes the oldest sealed segments whose events are all acked;
// with relocate, it then copies the oldest sealed segment's pending events
// forward if two or more sealed segments remain. Caller holds d.mu.
func (d *Disk) compact(relocate bool) {
	d.dropAcked()
	if !relocate || len(d.segs) < 3 {
		return
	}
	old := d.segs[0]
	data, err := os.ReadFile(old.path)
	if err != nil {
		d.err = err
		return
	}
	active := d.segs[len(d.segs)-1]
	var buf []byte
	type move struct {
		id  uint64
		off int64
	}
	var moves []move
	scanRecords(data, func(off int64, p []byte) bool {
		if !isEvent(p[0]) {
			return true
		}
		id := binary.LittleEndian.Uint64(p[1:9])
		if ent, ok := d.entries[id]; ok && ent.seg == old && ent.off == off {
			moves = append(moves, move{id, active.size + int64(len(buf))})
			buf = append(buf, frame(p)...)
		}
		return true
	})
	if len(buf) > 0 {
		if _, err := d.f.Write(buf); err != nil {
			d.err = err
			return
		}
		// The copies must be durable before the original goes.
		if err := d.f.Sync(); err != nil {
			d.err = err
			return
		}
		active.size += int64(len(buf))
		d.written++
	}
	for _, m := range moves {
		ent := d.entries[m.id]
		old.pending--
		active.pending++
		ent.seg, ent.off = active, m.off
	}
	d.dropAcked()
}

func (d *Disk) dropAcked() {
	for len(d.segs) > 1 && d.segs[0].pending == 0 {
		if err := os.Remove(d.segs[0].path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			d.err = err
			return
		}
		d.segs[0] = nil
		d.segs = d.segs[1:]
	}
}

// Append writes e durably, assigns e.ID and returns once the record is
// synced. ErrFull when maxBytes of records are pending; ErrTooLarge for an
// event that alone exceeds maxBytes.
func (d *Disk) Append(e *Event) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	if d.err != nil {
		return d.err
	}
	id := d.nextID
	p := encodeAppend(id, e)
	size := int64(frameHeader + len(p))
	if size > maxRecord || size > d.maxBytes {
		return ErrTooLarge
	}
	if d.pending+size > d.maxBytes {
		return ErrFull
	}
	seg, off, err := d.write(p)
	if err != nil {
		return err
	}
	e.ID, e.Origin = id, d.origin
	d.setEntry(id, &diskEntry{seg: seg, off: off, size: size})
	my := d.written
	d.waiters++
	if d.waiters >= groupWaiters || d.syncEvery <= 0 {
		select {
		case d.kick <- struct{}{}:
		default:
		}
	}
	for d.synced < my && d.err == nil {
		d.cond.Wait()
	}
	d.waiters--
	if d.synced >= my {
		return nil
	}
	return d.err
}

// Ack records that id is done. It does not wait for a sync (see Disk).
func (d *Disk) Ack(id uint64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	if d.err != nil {
		return d.err
	}
	if _, ok := d.entries[id]; !ok {
		return nil
	}
	p := binary.LittleEndian.AppendUint64([]byte{recAck}, id)
	if _, _, err := d.write(p); err != nil {
		return err
	}
	d.dropEntry(id)
	d.dropAcked()
	if d.syncEvery <= 0 {
		select {
		case d.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

// Pending reads back the unacknowledged events, in ID order.
func (d *Disk) Pending() ([]*Event, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, ErrClosed
	}
	out := make([]*Event, 0, len(d.entries))
	for _, seg := range d.segs {
		if seg.pending == 0 {
			continue
		}
		data, err := os.ReadFile(seg.path)
		if err != nil {
			return nil, err
		}
		scanRecords(data, func(off int64, p []byte) bool {
			if !isEvent(p[0]) {
				return true
			}
			id := binary.LittleEndian.Uint64(p[1:9])
			if ent, ok := d.entries[id]; ok && ent.seg == seg && ent.off == off {
				e, _ := decodeAppend(p) // validated by scanRecords
				e.Origin = d.origin
				out = append(out, e)
			}
			return true
		})
	}
	slices.SortFunc(out, func(a, b *Event) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out, nil
}

// PendingBytes returns the bytes of pending records, the quantity bounded
// by maxBytes.
func (d *Disk) PendingBytes() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.pending
}

// Truncated returns how many bytes of torn or corrupt tail OpenDisk cut
// off, so the daemon can log that a crash lost unsynced writes.
func (d *Disk) Truncated() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.truncated
}

// Close syncs what was written, stops the syncer and closes the files.
func (d *Disk) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return ErrClosed
	}
	d.closed = true
	d.mu.Unlock()
	close(d.done)
	d.wg.Wait() // the syncer's final pass releases every waiting appender
	d.mu.Lock()
	defer d.mu.Unlock()
	err := d.f.Close()
	return errors.Join(d.err, err)
}

func (d *Disk) syncer() {
	defer d.wg.Done()
	var tick <-chan time.Time
	if d.syncEvery > 0 {
		t := time.NewTicker(d.syncEvery)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-d.done:
			d.syncOnce()
			return
		case <-tick:
		case <-d.kick:
		}
		d.syncOnce()
	}
}

// syncOnce fsyncs everything written so far, without holding d.mu during
// the fsync so that the next batch can be written meanwhile. Only this
// goroutine closes retired files, so the ones it syncs stay open.
func (d *Disk) syncOnce() {
	d.mu.Lock()
	if d.synced == d.written && len(d.retired) == 0 {
		d.mu.Unlock()
		return
	}
	target, f, retired := d.written, d.f, d.retired
	d.retired = nil
	d.mu.Unlock()
	var err error
	for _, r := range retired {
		if e := r.Sync(); e != nil && err == nil {
			err = e
		}
		r.Close()
	}
	if e := f.Sync(); e != nil && err == nil {
		err = e
	}
	d.mu.Lock()
	if err != nil && d.err == nil {
		d.err = err
	}
	d.syncs++
	if err == nil && target > d.synced {
		d.synced = target
	}
	d.cond.Broadcast()
	d.mu.Unlock()
}
