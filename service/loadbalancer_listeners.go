package service

import (
	"context"
	"slices"

	"github.com/omiproject/omi"
)

// Listeners and sticky policies of load balancers.

type CreateLoadBalancerListenersRequest struct {
	Base
	Listeners        []ListenerForCreation `json:"Listeners"`
	LoadBalancerName string                `json:"LoadBalancerName"`
}

// CreateLoadBalancerListeners adds listeners on ports the load balancer
// does not listen on yet.
func (s *Service) CreateLoadBalancerListeners(ctx context.Context, c *omi.Caller, in *CreateLoadBalancerListenersRequest) (*LoadBalancerResponse, error) {
	if len(in.Listeners) == 0 {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "Listeners is required")
	}
	return s.changeLoadBalancer(ctx, c, in.LoadBalancerName, func(tx omi.Tx, l *omi.LoadBalancer) error {
		if err := addListeners(l, in.Listeners); err != nil {
			return err
		}
		return listenerCertificatesKnown(tx, c.AccountID(), l)
	})
}

type DeleteLoadBalancerListenersRequest struct {
	Base
	LoadBalancerName  string `json:"LoadBalancerName"`
	LoadBalancerPorts []int  `json:"LoadBalancerPorts"`
}

// DeleteLoadBalancerListeners deletes the listeners of some ports, with
// their listener rules. A port without a listener is refused.
func (s *Service) DeleteLoadBalancerListeners(ctx context.Context, c *omi.Caller, in *DeleteLoadBalancerListenersRequest) (*LoadBalancerResponse, error) {
	if len(in.LoadBalancerPorts) == 0 {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "LoadBalancerPorts is required")
	}
	return s.changeLoadBalancer(ctx, c, in.LoadBalancerName, func(tx omi.Tx, l *omi.LoadBalancer) error {
		for _, p := range in.LoadBalancerPorts {
			if _, err := listenerAt(l, p); err != nil {
				return err
			}
		}
		l.Listeners = slices.DeleteFunc(l.Listeners, func(li omi.Listener) bool { return slices.Contains(in.LoadBalancerPorts, li.LoadBalancerPort) })
		rules, err := lbRules(tx, c.AccountID(), l.LoadBalancerName)
		if err != nil {
			return err
		}
		for _, r := range rules {
			if slices.Contains(in.LoadBalancerPorts, r.LoadBalancerPort) {
				if err := tx.Delete(omi.KindListenerRule, r.ResourceID()); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

type CreateLoadBalancerPolicyRequest struct {
	Base
	CookieExpirationPeriod *int   `json:"CookieExpirationPeriod"`
	CookieName             string `json:"CookieName"`
	LoadBalancerName       string `json:"LoadBalancerName"`
	PolicyName             string `json:"PolicyName"`
	PolicyType             string `json:"PolicyType"`
}

// CreateLoadBalancerPolicy adds a stickiness policy: "app" (an
// application cookie, CookieName required) or "load_balancer" (a cookie
// of the load balancer, living CookieExpirationPeriod seconds, 1 by
// default: the browser session).
func (s *Service) CreateLoadBalancerPolicy(ctx context.Context, c *omi.Caller, in *CreateLoadBalancerPolicyRequest) (*LoadBalancerResponse, error) {
	if err := validPolicyName(in.PolicyName); err != nil {
		return nil, err
	}
	switch in.PolicyType {
	case "app":
		if in.CookieName == "" || len(in.CookieName) > 255 {
			return nil, omi.Invalid(codeInvalidPolicyCookie, "CookieName is required for an app policy (1 to 255 characters).")
		}
	case "load_balancer":
		if in.CookieExpirationPeriod != nil && *in.CookieExpirationPeriod < 1 {
			return nil, omi.Invalid("4066", "CookieExpirationPeriod must be at least 1 second.") // invalid-sticky-policy-expiration
		}
	case "":
		return nil, omi.Invalid(omi.CodeInvalidParameter, "PolicyType is required")
	default:
		return nil, omi.Invalid(omi.CodeInvalidValue, "Invalid PolicyType '%s': app or load_balancer.", in.PolicyType)
	}
	return s.changeLoadBalancer(ctx, c, in.LoadBalancerName, func(tx omi.Tx, l *omi.LoadBalancer) error {
		if hasPolicy(l, in.PolicyName) {
			return omi.Conflict(codeDuplicatePolicyName, "The load balancer '%s' already has a policy '%s'.", l.LoadBalancerName, in.PolicyName)
		}
		if in.PolicyType == "app" {
			l.ApplicationStickyCookiePolicies = append(l.ApplicationStickyCookiePolicies, omi.ApplicationStickyCookiePolicy{CookieName: in.CookieName, PolicyName: in.PolicyName})
			return nil
		}
		period := 1
		if in.CookieExpirationPeriod != nil {
			period = *in.CookieExpirationPeriod
		}
		l.LoadBalancerStickyCookiePolicies = append(l.LoadBalancerStickyCookiePolicies, omi.LoadBalancerStickyCookiePolicy{CookieExpirationPeriod: period, PolicyName: in.PolicyName})
		return nil
	})
}

// validPolicyName checks a policy name: 1 to 32 letters, digits and dashes.
func validPolicyName(name string) error {
	if name == "" {
		return omi.Invalid(omi.CodeInvalidParameter, "PolicyName is required")
	}
	ok := len(name) <= 32
	for _, r := range name {
		ok = ok && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-')
	}
	if !ok {
		return omi.Invalid(codeInvalidPolicyName, "Invalid PolicyName '%s': up to 32 letters, digits and dashes.", name)
	}
	return nil
}

type DeleteLoadBalancerPolicyRequest struct {
	Base
	LoadBalancerName string `json:"LoadBalancerName"`
	PolicyName       string `json:"PolicyName"`
}

// DeleteLoadBalancerPolicy deletes a policy no listener uses.
func (s *Service) DeleteLoadBalancerPolicy(ctx context.Context, c *omi.Caller, in *DeleteLoadBalancerPolicyRequest) (*LoadBalancerResponse, error) {
	if in.PolicyName == "" {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "PolicyName is required")
	}
	return s.changeLoadBalancer(ctx, c, in.LoadBalancerName, func(tx omi.Tx, l *omi.LoadBalancer) error {
		if !hasPolicy(l, in.PolicyName) {
			return omi.NotFound(codeNoSuchStickyPolicy, "The load balancer '%s' has no policy '%s'.", l.LoadBalancerName, in.PolicyName)
		}
		for _, li := range l.Listeners {
			if slices.Contains(li.PolicyNames, in.PolicyName) {
				return omi.Conflict(codePolicyOnListener, "The policy '%s' is enabled on the listener of port %d: disable it first.", in.PolicyName, li.LoadBalancerPort)
			}
		}
		l.ApplicationStickyCookiePolicies = slices.DeleteFunc(l.ApplicationStickyCookiePolicies, func(p omi.ApplicationStickyCookiePolicy) bool { return p.PolicyName == in.PolicyName })
		l.LoadBalancerStickyCookiePolicies = slices.DeleteFunc(l.LoadBalancerStickyCookiePolicies, func(p omi.LoadBalancerStickyCookiePolicy) bool { return p.PolicyName == in.PolicyName })
		return nil
	})
}
