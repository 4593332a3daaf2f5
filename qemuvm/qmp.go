package qemuvm

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// qmp is a connection to a QEMU machine's monitor (QMP, JSON lines): one
// command at a time, events passed to a callback. QEMU serves one QMP
// client per socket, so the driver keeps this connection open for the
// machine's life; it closes when QEMU exits.
type qmp struct {
	conn    net.Conn
	mu      sync.Mutex
	replies chan qmpReply
	closed  chan struct{}
}

type qmpReply struct {
	Return json.RawMessage `json:"return"`
	Error  *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error"`
}

type qmpMessage struct {
	qmpReply
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
	QMP   json.RawMessage `json:"QMP"`
}

// dialQMP connects to the monitor socket at path, negotiates the
// capabilities and then passes every event to onEvent (from a goroutine).
func dialQMP(path string, onEvent func(name string, data json.RawMessage)) (*qmp, error) {
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		return nil, err
	}
	r := bufio.NewReader(c)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	var greet qmpMessage
	line, err := r.ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &greet)
	}
	if err != nil || greet.QMP == nil {
		c.Close()
		return nil, fmt.Errorf("qmp greeting: %v", err)
	}
	if _, err := c.Write([]byte(`{"execute":"qmp_capabilities"}` + "\n")); err != nil {
		c.Close()
		return nil, err
	}
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("qmp capabilities: %w", err)
		}
		var m qmpMessage
		if json.Unmarshal(line, &m) == nil && m.Event == "" {
			if m.Error != nil {
				c.Close()
				return nil, fmt.Errorf("qmp capabilities: %s", m.Error.Desc)
			}
			break
		}
	}
	c.SetDeadline(time.Time{})
	q := &qmp{conn: c, replies: make(chan qmpReply, 1), closed: make(chan struct{})}
	go func() {
		defer close(q.closed)
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				return
			}
			var m qmpMessage
			if json.Unmarshal(line, &m) != nil {
				continue
			}
			if m.Event != "" {
				onEvent(m.Event, m.Data)
				continue
			}
			select {
			case q.replies <- m.qmpReply:
			default:
			}
		}
	}()
	return q, nil
}

var errQMPClosed = errors.New("the machine's monitor is closed (QEMU exited)")

// exec runs a command and waits for its reply.
func (q *qmp) exec(cmd string, args any) error {
	_, err := q.call(cmd, args)
	return err
}

// hmp runs a human monitor command (hostfwd_add, info usernet, ...,
// which QMP has no command of its own for) and returns its text output.
func (q *qmp) hmp(line string) (string, error) {
	raw, err := q.call("human-monitor-command", map[string]string{"command-line": line})
	if err != nil {
		return "", err
	}
	var out string
	if err := json.Unmarshal(raw, &out); err != nil {
		return "", fmt.Errorf("qmp %s: %w", line, err)
	}
	return out, nil
}

// call runs a command and returns its reply's "return" value.
func (q *qmp) call(cmd string, args any) (json.RawMessage, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	msg := map[string]any{"execute": cmd}
	if args != nil {
		msg["arguments"] = args
	}
	b, _ := json.Marshal(msg)
	q.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := q.conn.Write(append(b, '\n')); err != nil {
		return nil, errQMPClosed
	}
	select {
	case r := <-q.replies:
		if r.Error != nil {
			return nil, fmt.Errorf("qmp %s: %s", cmd, r.Error.Desc)
		}
		return r.Return, nil
	case <-q.closed:
		if cmd == "quit" {
			return nil, nil
		}
		return nil, errQMPClosed
	case <-time.After(10 * time.Second):
		return nil, fmt.Errorf("qmp %s: no reply in 10 s", cmd)
	}
}

func (q *qmp) close() { q.conn.Close() }
