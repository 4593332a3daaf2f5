package service

import (
	"context"
	"time"

	"github.com/omiproject/omi"
)

// Net peerings. The requester (owner of the source Net) creates one; it
// waits for the owner of the accepter Net, possibly another account, to
// accept or reject it within a week. Both accounts see it; only the
// requester tags it. The state machine is the API's:
//
//	pending-acceptance -> active | rejected | expired | deleted
//	active -> deleted
//
// and a peering of overlapping Nets is failed from the start, as the API
// documents. Ended peerings (deleted, rejected, failed, expired) stay
// readable for peeringLinger, then disappear.

const (
	// peeringLifetime is how long a request waits for acceptance.
	peeringLifetime = 7 * 24 * time.Hour
	// peeringLinger is how long an ended peering stays readable.
	peeringLinger = time.Hour
)

// visiblePeering loads a Net peering the caller takes part in, as
// requester or accepter. Anyone else gets the not-found error.
func (s *Service) visiblePeering(tx omi.Tx, c *omi.Caller, id string) (*omi.NetPeering, error) {
	p, err := omi.Get[omi.NetPeering](tx, id)
	if isNotFound(err) || (err == nil && (p.AccountId != c.AccountID() && p.AccepterNet.AccountId != c.AccountID() || s.peeringGone(p))) {
		return nil, peeringNotFound(id)
	}
	return p, err
}

// peeringGone reports whether an ended peering is past its linger time.
func (s *Service) peeringGone(p *omi.NetPeering) bool {
	ended := p.EndedAt
	if ended == "" && p.ExpirationDate != nil && peeringState(p, s.now()) == omi.PeeringExpired {
		ended = *p.ExpirationDate
	}
	if ended == "" {
		return false
	}
	t, err := time.Parse(omi.TimeFormat, ended)
	return err == nil && s.now().Sub(t) > peeringLinger
}

// setPeeringState moves a peering to a new state.
func (s *Service) setPeeringState(p *omi.NetPeering, name, message string) {
	p.State = omi.NetPeeringState{Name: name, Message: message}
	switch name {
	case omi.PeeringActive:
		p.ExpirationDate = nil
	case omi.PeeringDeleted, omi.PeeringRejected, omi.PeeringFailed, omi.PeeringExpired:
		p.EndedAt = s.nowString()
	}
}

// peeringsBetween lists the live (pending or active) peerings between two
// Nets, in either direction, visible to account.
func (s *Service) peeringsBetween(tx omi.Tx, account, netA, netB string) ([]*omi.NetPeering, error) {
	var out []*omi.NetPeering
	now := s.now()
	err := omi.Scan(tx, omi.Query{VisibleTo: account}, func(p *omi.NetPeering) (bool, error) {
		st := peeringState(p, now)
		if st != omi.PeeringPending && st != omi.PeeringActive {
			return true, nil
		}
		a, b := p.SourceNet.NetId, p.AccepterNet.NetId
		if a == netA && b == netB || a == netB && b == netA {
			out = append(out, p)
		}
		return true, nil
	})
	return out, err
}

type CreateNetPeeringRequest struct {
	Base
	AccepterNetId   string `json:"AccepterNetId"`
	AccepterOwnerId string `json:"AccepterOwnerId"`
	SourceNetId     string `json:"SourceNetId"`
}
type CreateNetPeeringResponse struct {
	NetPeering *omi.NetPeering `json:"NetPeering"`
}

// CreateNetPeering requests a peering from one of the caller's Nets to a
// Net of the caller or, with AccepterOwnerId, of another account.
func (s *Service) CreateNetPeering(ctx context.Context, c *omi.Caller, in *CreateNetPeeringRequest) (*CreateNetPeeringResponse, error) {
	if err := required("AccepterNetId", in.AccepterNetId, "SourceNetId", in.SourceNetId); err != nil {
		return nil, err
	}
	if in.AccepterNetId == in.SourceNetId {
		return nil, omi.Invalid(omi.CodeInvalidValue, "a Net cannot be peered with itself")
	}
	owner := in.AccepterOwnerId
	if owner == "" {
		owner = c.AccountID()
	}
	var p *omi.NetPeering
	err := s.update(ctx, func(tx omi.Tx) error {
		src, err := gwNet(tx, c, in.SourceNetId)
		if err != nil {
			return err
		}
		acc, err := gwNetOf(tx, owner, in.AccepterNetId)
		if err != nil {
			return err
		}
		exp := omi.FormatTime(s.now().Add(peeringLifetime))
		p = &omi.NetPeering{AccountId: c.AccountID(), NetPeeringId: omi.NewID(omi.PrefixNetPeering), Tags: []omi.Tag{},
			SourceNet:      omi.PeeringNet{AccountId: c.AccountID(), IpRange: src.IpRange, NetId: src.NetId},
			AccepterNet:    omi.PeeringNet{AccountId: owner, IpRange: acc.IpRange, NetId: acc.NetId},
			ExpirationDate: &exp}
		live, err := s.peeringsBetween(tx, c.AccountID(), src.NetId, acc.NetId)
		if err != nil {
			return err
		}
		switch {
		case rangesOverlap(src.IpRange, acc.IpRange):
			s.setPeeringState(p, omi.PeeringFailed, "Failed due to overlapping IP ranges: "+src.IpRange+" and "+acc.IpRange)
		case len(live) > 0 && peeringState(live[0], s.now()) == omi.PeeringActive:
			// The API documents that a peering of two Nets already
			// peered is rejected at once as redundant.
			s.setPeeringState(p, omi.PeeringRejected, "Rejected: the Nets are already peered by "+live[0].NetPeeringId)
		case len(live) > 0 && live[0].SourceNet.NetId == src.NetId:
			return omi.Conflict(codePeeringExists, "The Net peering '%s' between these Nets is already waiting for acceptance.", live[0].NetPeeringId)
		default:
			s.setPeeringState(p, omi.PeeringPending, "Pending acceptance by "+owner)
		}
		return insertNew(tx, p, func() { p.NetPeeringId = omi.NewID(omi.PrefixNetPeering) })
	})
	if err != nil {
		return nil, err
	}
	return &CreateNetPeeringResponse{NetPeering: p.ForWire()}, nil
}

// rangesOverlap reports whether two IPv4 ranges share an address.
func rangesOverlap(a, b string) bool {
	pa, err1 := parseDestination(a)
	pb, err2 := parseDestination(b)
	return err1 == nil && err2 == nil && pa.Overlaps(pb)
}

type AcceptNetPeeringRequest struct {
	Base
	NetPeeringId string `json:"NetPeeringId"`
}
type AcceptNetPeeringResponse struct {
	NetPeering *omi.NetPeering `json:"NetPeering"`
}

// AcceptNetPeering accepts a pending peering; only the accepter Net's
// owner may. A pending peering of the same Nets the other way round is
// rejected as redundant.
func (s *Service) AcceptNetPeering(ctx context.Context, c *omi.Caller, in *AcceptNetPeeringRequest) (*AcceptNetPeeringResponse, error) {
	if err := required("NetPeeringId", in.NetPeeringId); err != nil {
		return nil, err
	}
	var p *omi.NetPeering
	err := s.update(ctx, func(tx omi.Tx) error {
		var err error
		p, err = s.visiblePeering(tx, c, in.NetPeeringId)
		if err != nil {
			return err
		}
		if p.AccepterNet.AccountId != c.AccountID() {
			return omi.Invalid(omi.CodeInvalidValue, "Only the owner of the accepter Net (%s) can accept the Net peering '%s'.", p.AccepterNet.AccountId, p.NetPeeringId)
		}
		if st := peeringState(p, s.now()); st != omi.PeeringPending {
			return omi.BadState(omi.CodeInvalidState, "The Net peering '%s' is %s, not pending-acceptance.", p.NetPeeringId, st)
		}
		live, err := s.peeringsBetween(tx, c.AccountID(), p.SourceNet.NetId, p.AccepterNet.NetId)
		if err != nil {
			return err
		}
		for _, o := range live {
			if o.NetPeeringId == p.NetPeeringId {
				continue
			}
			if o.State.Name == omi.PeeringActive {
				return omi.Conflict(codePeeringExists, "The Nets are already peered by '%s'.", o.NetPeeringId)
			}
			s.setPeeringState(o, omi.PeeringRejected, "Rejected as redundant with "+p.NetPeeringId)
			if err := omi.Put(tx, o); err != nil {
				return err
			}
		}
		s.setPeeringState(p, omi.PeeringActive, "Active")
		return omi.Put(tx, p)
	})
	if err != nil {
		return nil, err
	}
	return &AcceptNetPeeringResponse{NetPeering: p.ForWire()}, nil
}

type RejectNetPeeringRequest struct {
	Base
	NetPeeringId string `json:"NetPeeringId"`
}
type RejectNetPeeringResponse struct{}

// RejectNetPeering rejects a pending peering; only the accepter may.
func (s *Service) RejectNetPeering(ctx context.Context, c *omi.Caller, in *RejectNetPeeringRequest) (*RejectNetPeeringResponse, error) {
	if err := required("NetPeeringId", in.NetPeeringId); err != nil {
		return nil, err
	}
	err := s.update(ctx, func(tx omi.Tx) error {
		p, err := s.visiblePeering(tx, c, in.NetPeeringId)
		if err != nil {
			return err
		}
		if p.AccepterNet.AccountId != c.AccountID() {
			return omi.Invalid(omi.CodeInvalidValue, "Only the owner of the accepter Net (%s) can reject the Net peering '%s'.", p.AccepterNet.AccountId, p.NetPeeringId)
		}
		if st := peeringState(p, s.now()); st != omi.PeeringPending {
			return omi.BadState(omi.CodeInvalidState, "The Net peering '%s' is %s, not pending-acceptance.", p.NetPeeringId, st)
		}
		s.setPeeringState(p, omi.PeeringRejected, "Rejected by "+c.AccountID())
		return omi.Put(tx, p)
	})
	if err != nil {
		return nil, err
	}
	return &RejectNetPeeringResponse{}, nil
}

type DeleteNetPeeringRequest struct {
	Base
	NetPeeringId string `json:"NetPeeringId"`
}
type DeleteNetPeeringResponse struct{}

// DeleteNetPeering ends a peering: an active one by either side, a pending
// one by the requester. Rejected, failed, expired and deleted ones cannot
// be deleted, as the API documents.
func (s *Service) DeleteNetPeering(ctx context.Context, c *omi.Caller, in *DeleteNetPeeringRequest) (*DeleteNetPeeringResponse, error) {
	if err := required("NetPeeringId", in.NetPeeringId); err != nil {
		return nil, err
	}
	err := s.update(ctx, func(tx omi.Tx) error {
		p, err := s.visiblePeering(tx, c, in.NetPeeringId)
		if err != nil {
			return err
		}
		switch st := peeringState(p, s.now()); {
		case st == omi.PeeringActive:
		case st == omi.PeeringPending && p.AccountId == c.AccountID():
		case st == omi.PeeringPending:
			return omi.Invalid(omi.CodeInvalidValue, "Only the requester (%s) can delete the pending Net peering '%s'; reject it instead.", p.AccountId, p.NetPeeringId)
		default:
			return omi.BadState(omi.CodeInvalidState, "The Net peering '%s' is %s and cannot be deleted.", p.NetPeeringId, st)
		}
		s.setPeeringState(p, omi.PeeringDeleted, "Deleted by "+c.AccountID())
		return omi.Put(tx, p)
	})
	if err != nil {
		return nil, err
	}
	return &DeleteNetPeeringResponse{}, nil
}

type FiltersNetPeering struct {
	tagFilter
	AccepterNetAccountIds []string `json:"AccepterNetAccountIds"`
	AccepterNetIpRanges   []string `json:"AccepterNetIpRanges"`
	AccepterNetNetIds     []string `json:"AccepterNetNetIds"`
	ExpirationDates       []string `json:"ExpirationDates"`
	NetPeeringIds         []string `json:"NetPeeringIds"`
	SourceNetAccountIds   []string `json:"SourceNetAccountIds"`
	SourceNetIpRanges     []string `json:"SourceNetIpRanges"`
	SourceNetNetIds       []string `json:"SourceNetNetIds"`
	StateMessages         []string `json:"StateMessages"`
	StateNames            []string `json:"StateNames"`
}

// sameInstant compares two dates by the instant they name, whatever their
// precision or zone.
func sameInstant(want []string, have *string) bool {
	if len(want) == 0 {
		return true
	}
	if have == nil {
		return false
	}
	h, err := time.Parse(time.RFC3339Nano, *have)
	if err != nil {
		return false
	}
	for _, w := range want {
		if t, err := time.Parse(time.RFC3339Nano, w); err == nil && t.Equal(h) {
			return true
		}
	}
	return false
}

func (f *FiltersNetPeering) check() error {
	for _, d := range f.ExpirationDates {
		if _, err := time.Parse(time.RFC3339Nano, d); err != nil {
			return omi.Invalid(omi.CodeInvalidValue, "ExpirationDates: %q is not a date-time", d)
		}
	}
	return nil
}

func (f *FiltersNetPeering) match(p *omi.NetPeering) bool {
	return anyOf(f.AccepterNetAccountIds, p.AccepterNet.AccountId) && anyOf(f.AccepterNetIpRanges, p.AccepterNet.IpRange) &&
		anyOf(f.AccepterNetNetIds, p.AccepterNet.NetId) && sameInstant(f.ExpirationDates, p.ExpirationDate) &&
		anyOf(f.SourceNetAccountIds, p.SourceNet.AccountId) && anyOf(f.SourceNetIpRanges, p.SourceNet.IpRange) &&
		anyOf(f.SourceNetNetIds, p.SourceNet.NetId) && anyOf(f.StateMessages, p.State.Message) &&
		anyOf(f.StateNames, p.State.Name) && f.tagFilter.match(p.Tags)
}

type ReadNetPeeringsRequest struct {
	Base
	Paging
	Filters *FiltersNetPeering `json:"Filters"`
}
type ReadNetPeeringsResponse struct {
	NetPeerings   []*omi.NetPeering `json:"NetPeerings"`
	NextPageToken string            `json:"NextPageToken,omitempty"`
}

// ReadNetPeerings lists the peerings the caller takes part in, as
// requester or as accepter.
func (s *Service) ReadNetPeerings(ctx context.Context, c *omi.Caller, in *ReadNetPeeringsRequest) (*ReadNetPeeringsResponse, error) {
	f := in.Filters
	if f == nil {
		f = &FiltersNetPeering{}
	}
	if err := f.check(); err != nil {
		return nil, err
	}
	if _, err := resultsPerPage(in.ResultsPerPage); err != nil {
		return nil, err
	}
	if omi.IsDryRun(ctx) {
		return &ReadNetPeeringsResponse{NetPeerings: []*omi.NetPeering{}}, nil
	}
	var out []*omi.NetPeering
	var next string
	now := s.now()
	err := s.view(ctx, func(tx omi.Tx) error {
		var err error
		q := omi.Query{VisibleTo: c.AccountID(), IDs: f.NetPeeringIds}
		out, next, err = listPage[omi.NetPeering](tx, q, in.Paging, omi.PrefixNetPeering, func(p *omi.NetPeering) bool {
			if s.peeringGone(p) {
				return false
			}
			if st := peeringState(p, now); st != p.State.Name {
				p.State = omi.NetPeeringState{Name: st, Message: "Expired: not accepted within 7 days"}
			}
			return f.match(p)
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	for i, p := range out {
		out[i] = p.ForWire()
	}
	return &ReadNetPeeringsResponse{NetPeerings: out, NextPageToken: next}, nil
}
