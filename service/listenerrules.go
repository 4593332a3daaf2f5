package service

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"slices"
	"sort"

	"github.com/omiproject/omi"
)

// Listener rules: a rule forwards the requests of one listener that match
// a host or path pattern to some VMs, by priority. Kept as metadata.

func listenerRuleNotFound(name string) error {
	return omi.NotFound(codeNoSuchListenerRule, "The ListenerRuleName '%s' doesn't exist.", name)
}

// lbRules lists the listener rules of a load balancer.
func lbRules(tx omi.Tx, account, lbName string) ([]*omi.ListenerRule, error) {
	var out []*omi.ListenerRule
	err := omi.Scan(tx, omi.Query{Owners: []string{account}, Names: []string{lbName}}, func(r *omi.ListenerRule) (bool, error) {
		out = append(out, r)
		return true, nil
	})
	return out, err
}

// ownListenerRule loads a listener rule of the caller by name.
func ownListenerRule(tx omi.Tx, c *omi.Caller, name string) (*omi.ListenerRule, error) {
	if name == "" {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "ListenerRuleName is required")
	}
	r, err := omi.Get[omi.ListenerRule](tx, omi.LoadBalancerID(c.AccountID(), name))
	if isNotFound(err) {
		return nil, listenerRuleNotFound(name)
	}
	return r, err
}

// smallID draws a positive id below 2^30, the integer id of a listener
// rule (clients decode it as an int32).
func smallID() int {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("omi: crypto/rand failed: " + err.Error()) // the OS entropy source is gone
	}
	return int(binary.BigEndian.Uint32(b[:])>>2) + 1
}

// validPattern checks a host or path pattern: at most 128 characters and
// three wildcards.
func validPattern(what, p string) error {
	n := 0
	for _, r := range p {
		if r == '*' || r == '?' {
			n++
		}
	}
	if len(p) > 128 || n > 3 {
		return omi.Invalid(omi.CodeInvalidParameter, "%s '%s': at most 128 characters and 3 wildcards.", what, p)
	}
	return nil
}

type LoadBalancerLight struct {
	LoadBalancerName string `json:"LoadBalancerName"`
	LoadBalancerPort *int   `json:"LoadBalancerPort"`
}
type ListenerRuleForCreation struct {
	Action           string `json:"Action"`
	HostNamePattern  string `json:"HostNamePattern"`
	ListenerRuleName string `json:"ListenerRuleName"`
	PathPattern      string `json:"PathPattern"`
	Priority         *int   `json:"Priority"`
}
type CreateListenerRuleRequest struct {
	Base
	Listener     *LoadBalancerLight       `json:"Listener"`
	ListenerRule *ListenerRuleForCreation `json:"ListenerRule"`
	VmIds        []string                 `json:"VmIds"`
}
type ListenerRuleResponse struct {
	ListenerRule *omi.ListenerRuleAPI `json:"ListenerRule"`
}

// CreateListenerRule adds a rule to a listener: a name unique in the
// account, a priority unique in the listener (1 to 19999), a host or a
// path pattern, and backend VMs of the load balancer's scope.
func (s *Service) CreateListenerRule(ctx context.Context, c *omi.Caller, in *CreateListenerRuleRequest) (*ListenerRuleResponse, error) {
	if in.Listener == nil || in.ListenerRule == nil || len(in.VmIds) == 0 {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "Listener, ListenerRule and VmIds are required")
	}
	li, lr := in.Listener, in.ListenerRule
	if li.LoadBalancerName == "" || li.LoadBalancerPort == nil || lr.ListenerRuleName == "" || lr.Priority == nil {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "Listener.LoadBalancerName, Listener.LoadBalancerPort, ListenerRule.ListenerRuleName and ListenerRule.Priority are required")
	}
	if err := validLBName(lr.ListenerRuleName); err != nil {
		return nil, omi.Invalid("4059", "Invalid ListenerRuleName '%s': up to 32 letters, digits and dashes.", lr.ListenerRuleName) // invalid-rule-name
	}
	if *lr.Priority < 1 || *lr.Priority > 19999 {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "Priority %d is not between 1 and 19999.", *lr.Priority)
	}
	if lr.Action != "" && lr.Action != "forward" {
		return nil, omi.Invalid(omi.CodeInvalidValue, "Invalid Action '%s': forward.", lr.Action)
	}
	if lr.HostNamePattern == "" && lr.PathPattern == "" {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "HostNamePattern or PathPattern is required")
	}
	if err := validPattern("HostNamePattern", lr.HostNamePattern); err != nil {
		return nil, err
	}
	if err := validPattern("PathPattern", lr.PathPattern); err != nil {
		return nil, err
	}
	r := &omi.ListenerRule{AccountId: c.AccountID(), LoadBalancerName: li.LoadBalancerName, LoadBalancerPort: *li.LoadBalancerPort}
	r.Action, r.HostNamePattern, r.PathPattern, r.Priority = "forward", lr.HostNamePattern, lr.PathPattern, *lr.Priority
	r.ListenerRuleName, r.ListenerRuleId = lr.ListenerRuleName, smallID()
	err := s.update(ctx, func(tx omi.Tx) error {
		l, err := ownLoadBalancer(tx, c, li.LoadBalancerName)
		if err != nil {
			return err
		}
		lis, err := listenerAt(l, *li.LoadBalancerPort)
		if err != nil {
			return err
		}
		r.ListenerId = listenerID(l, lis.LoadBalancerPort)
		for _, id := range in.VmIds {
			if err := s.backendVm(tx, c, l, id); err != nil {
				return err
			}
			if !slices.Contains(r.VmIds, id) {
				r.VmIds = append(r.VmIds, id)
			}
		}
		if _, err := ownListenerRule(tx, c, r.ListenerRuleName); err == nil {
			return omi.Conflict(codeRuleNameInUse, "The listener rule '%s' already exists.", r.ListenerRuleName)
		} else if !isNotFoundErr(err) {
			return err
		}
		rules, err := lbRules(tx, c.AccountID(), l.LoadBalancerName)
		if err != nil {
			return err
		}
		for _, o := range rules {
			if o.LoadBalancerPort == r.LoadBalancerPort && o.Priority == r.Priority {
				return omi.Conflict(codePriorityInUse, "The listener of port %d already has a rule of priority %d ('%s').", r.LoadBalancerPort, r.Priority, o.ListenerRuleName)
			}
		}
		n := 0
		if err := omi.Scan(tx, omi.Query{Owners: []string{c.AccountID()}}, func(*omi.ListenerRule) (bool, error) { n++; return true, nil }); err != nil {
			return err
		}
		if max := quotaMax("lb_rules_limit"); n >= max {
			return omi.Errorf(codeTooManyListenerRules, omi.TypeTooManyResources, "An account has at most %d listener rules.", max)
		}
		return omi.Insert(tx, r)
	})
	if err != nil {
		return nil, err
	}
	return &ListenerRuleResponse{ListenerRule: ruleView(r)}, nil
}

// listenerID is the integer id of a listener: stable for a load balancer
// and port, and within 31 bits (clients decode it as an int32).
func listenerID(l *omi.LoadBalancer, port int) int {
	return int(l.Seq%30000)*65536 + port
}

// isNotFoundErr tells whether err is a NotFound API error.
func isNotFoundErr(err error) bool {
	e, ok := err.(*omi.Error)
	return ok && e.Type == omi.TypeInvalidResource
}

// ruleView is a listener rule as the API shows it.
func ruleView(r *omi.ListenerRule) *omi.ListenerRuleAPI {
	out := r.ListenerRuleAPI
	if out.VmIds == nil {
		out.VmIds = []string{}
	}
	return &out
}

type FiltersListenerRule struct {
	ListenerRuleNames []string `json:"ListenerRuleNames"`
}
type ReadListenerRulesRequest struct {
	Base
	Filters *FiltersListenerRule `json:"Filters"`
}
type ReadListenerRulesResponse struct {
	ListenerRules []*omi.ListenerRuleAPI `json:"ListenerRules"`
}

// ReadListenerRules lists the caller's listener rules by name.
func (s *Service) ReadListenerRules(ctx context.Context, c *omi.Caller, in *ReadListenerRulesRequest) (*ReadListenerRulesResponse, error) {
	f := in.Filters
	if f == nil {
		f = &FiltersListenerRule{}
	}
	out := []*omi.ListenerRuleAPI{}
	err := s.view(ctx, func(tx omi.Tx) error {
		return omi.Scan(tx, omi.Query{Owners: []string{c.AccountID()}}, func(r *omi.ListenerRule) (bool, error) {
			if anyOf(f.ListenerRuleNames, r.ListenerRuleName) {
				out = append(out, ruleView(r))
			}
			return true, nil
		})
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ListenerRuleName < out[j].ListenerRuleName })
	return &ReadListenerRulesResponse{ListenerRules: out}, nil
}

type UpdateListenerRuleRequest struct {
	Base
	HostPattern      *string `json:"HostPattern"`
	ListenerRuleName string  `json:"ListenerRuleName"`
	PathPattern      *string `json:"PathPattern"`
}

// UpdateListenerRule changes the host or path pattern of a rule; a rule
// keeps at least one of them.
func (s *Service) UpdateListenerRule(ctx context.Context, c *omi.Caller, in *UpdateListenerRuleRequest) (*ListenerRuleResponse, error) {
	var out *omi.ListenerRuleAPI
	err := s.update(ctx, func(tx omi.Tx) error {
		r, err := ownListenerRule(tx, c, in.ListenerRuleName)
		if err != nil {
			return err
		}
		if in.HostPattern != nil {
			if err := validPattern("HostPattern", *in.HostPattern); err != nil {
				return err
			}
			r.HostNamePattern = *in.HostPattern
		}
		if in.PathPattern != nil {
			if err := validPattern("PathPattern", *in.PathPattern); err != nil {
				return err
			}
			r.PathPattern = *in.PathPattern
		}
		if r.HostNamePattern == "" && r.PathPattern == "" {
			return omi.Invalid(omi.CodeInvalidParameter, "A listener rule keeps a HostPattern or a PathPattern.")
		}
		out = ruleView(r)
		return omi.Put(tx, r)
	})
	if err != nil {
		return nil, err
	}
	return &ListenerRuleResponse{ListenerRule: out}, nil
}

type DeleteListenerRuleRequest struct {
	Base
	ListenerRuleName string `json:"ListenerRuleName"`
}
type DeleteListenerRuleResponse struct{}

// DeleteListenerRule deletes a listener rule.
func (s *Service) DeleteListenerRule(ctx context.Context, c *omi.Caller, in *DeleteListenerRuleRequest) (*DeleteListenerRuleResponse, error) {
	err := s.update(ctx, func(tx omi.Tx) error {
		r, err := ownListenerRule(tx, c, in.ListenerRuleName)
		if err != nil {
			return err
		}
		return tx.Delete(omi.KindListenerRule, r.ResourceID())
	})
	if err != nil {
		return nil, err
	}
	return &DeleteListenerRuleResponse{}, nil
}
