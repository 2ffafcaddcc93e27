package control

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"
)

// ServeCLIListener answers rtpengine-ctl's wire format on ln until Shutdown:
// the client sends one command line, rtcgate writes the command's text and
// closes the connection — which is how rtpengine-ctl knows the answer is
// complete.
func (s *Server) ServeCLIListener(ln net.Listener) error {
	ln = s.limit(ln)
	if !s.track(nil, ln) {
		ln.Close()
		return nil
	}
	var tempDelay time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || s.isClosing() {
				return nil
			}
			// Out of file descriptors and the like: back off, as net/http does.
			if isTemporary(err) {
				tempDelay = min(max(2*tempDelay, 5*time.Millisecond), time.Second)
				s.log.Warn("cli accept failed; retrying", "err", err, "delay", tempDelay)
				time.Sleep(tempDelay)
				continue
			}
			return err
		}
		tempDelay = 0
		if !s.enter() {
			conn.Close()
			return nil
		}
		go func() {
			defer s.conns.Done()
			s.serveCLIConn(conn)
		}()
	}
}

func isTemporary(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ECONNABORTED)
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

func (s *Server) serveCLIConn(conn net.Conn) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(s.opts.Timeout))
	line, err := readCommandLine(bufio.NewReaderSize(conn, 4096), s.opts.MaxMessage)
	if tc, ok := conn.(*trackedConn); ok {
		tc.busy.Store(true) // the command runs: not idle
	}
	var out string
	switch {
	case err == nil && isHTTPRequestLine(line):
		// A browser made to POST to the CLI port: its request line is no
		// command, and nothing it sends after it is run.
		s.requests.WithLabelValues("tcp-cli", "cli", "400").Inc()
		s.refused.WithLabelValues("http-on-cli").Inc()
		return
	case errors.Is(err, errLineTooLong):
		out = fmt.Sprintf("Command too long: over %d bytes (control-max-message)\n", s.opts.MaxMessage)
		s.requests.WithLabelValues("tcp-cli", "cli", "413").Inc()
	case err != nil:
		// Nothing usable arrived in time (or the peer went away): there is
		// nobody to answer.
		s.log.Debug("cli connection without a command", "remote", conn.RemoteAddr(), "err", err)
		s.requests.WithLabelValues("tcp-cli", "cli", "408").Inc()
		return
	default:
		out = s.cli.Run(s.baseCtx, line)
		s.requests.WithLabelValues("tcp-cli", "cli", "200").Inc()
	}
	_, _ = io.WriteString(conn, out)
	// Close gently: closing with unread input (an over-long line) would
	// reset the connection and lose the answer. Half-close, then drain a
	// little of what the client still sends.
	if tc, ok := conn.(interface{ CloseWrite() error }); ok {
		_ = tc.CloseWrite()
		_ = conn.SetReadDeadline(time.Now().Add(min(s.opts.Timeout, time.Second)))
		_, _ = io.Copy(io.Discard, io.LimitReader(conn, int64(s.opts.MaxMessage)+64<<10))
	}
}

// isHTTPRequestLine recognises "METHOD /target HTTP/1.1".
func isHTTPRequestLine(line string) bool {
	f := strings.Fields(line)
	return len(f) == 3 && strings.HasPrefix(f[2], "HTTP/")
}

var errLineTooLong = errors.New("command line too long")

// readCommandLine reads up to a newline (or the end of the stream, for a
// client that half-closes instead) and at most max bytes.
func readCommandLine(r *bufio.Reader, max int) (string, error) {
	var buf bytes.Buffer
	for {
		chunk, err := r.ReadSlice('\n')
		buf.Write(chunk)
		if buf.Len() > max+2 { // allow for the line's own CRLF
			return "", errLineTooLong
		}
		switch {
		case err == nil:
			return strings.TrimRight(buf.String(), "\r\n"), nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && buf.Len() > 0:
			return strings.TrimRight(buf.String(), "\r\n"), nil
		default:
			return "", err
		}
	}
}
