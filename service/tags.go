package service

import (
	"context"
	"encoding/json"
	"sort"

	"github.com/omiproject/omi"
)

// taggedKinds are the kinds CreateTags can reach, in ReadTags order.
var taggedKinds = []omi.Kind{omi.KindImage, omi.KindSnapshot, omi.KindVolume, omi.KindVm, omi.KindTask, omi.KindSecurityGroup, omi.KindPublicIp, omi.KindKeypair}

// tagDecoders decode a stored record of each taggable kind.
var tagDecoders = map[omi.Kind]func(omi.Record) (omi.Tagged, error){
	omi.KindImage:         decodeTagged[omi.Image],
	omi.KindSnapshot:      decodeTagged[omi.Snapshot],
	omi.KindVolume:        decodeTagged[omi.Volume],
	omi.KindVm:            decodeTagged[omi.Vm],
	omi.KindTask:          decodeTagged[omi.ExportTask],
	omi.KindSecurityGroup: decodeTagged[omi.SecGroup],
	omi.KindPublicIp:      decodeTagged[omi.PublicIp],
	omi.KindKeypair:       decodeTagged[omi.Keypair],
}

func decodeTagged[T any, PT interface {
	*T
	omi.Tagged
}](rec omi.Record) (omi.Tagged, error) {
	v, err := omi.Decode[T, PT](rec)
	if err != nil {
		return nil, err
	}
	return PT(v), nil
}

// loadTagged loads a resource the caller owns for a tag change. Missing and
// other accounts' resources get the kind's not-found error.
func (s *Service) loadTagged(tx omi.Tx, c *omi.Caller, id string) (omi.Tagged, error) {
	kind, ok := omi.KindOfID(id)
	decode := tagDecoders[kind]
	if !ok || decode == nil {
		return nil, omi.Invalid(omi.CodeMalformedID, "%q is not the id of a taggable resource", id)
	}
	rec, err := tx.Get(kind, id)
	if isNotFound(err) && extraTagged[kind] != nil {
		if r, err := extraTagged[kind](s, tx, c, id); r != nil || err != nil {
			return r, err
		}
	}
	if isNotFound(err) || (err == nil && rec.Owner != c.AccountID()) {
		return nil, notFoundFor(kind, id)
	}
	if err != nil {
		return nil, err
	}
	return decode(rec)
}

// retag applies change to the tags of each resource, all or none.
func (s *Service) retag(ctx context.Context, c *omi.Caller, ids []string, change func(tags *[]omi.Tag)) error {
	return s.update(ctx, func(tx omi.Tx) error {
		for _, id := range ids {
			r, err := s.loadTagged(tx, c, id)
			if err != nil {
				return err
			}
			change(r.TagList())
			if len(*r.TagList()) > omi.MaxTagsPerRes {
				return omi.Errorf("10041", omi.TypeTooManyResources, "resource %s would have more than %d tags", id, omi.MaxTagsPerRes)
			}
			if err := omi.Put(tx, r); err != nil {
				return err
			}
		}
		return nil
	})
}

// notFoundFor is the not-found error of a kind.
func notFoundFor(kind omi.Kind, id string) error {
	switch kind {
	case omi.KindImage:
		return imageNotFound(id)
	case omi.KindSnapshot:
		return snapshotNotFound(id)
	case omi.KindVolume:
		return omi.NotFound(omi.CodeNoSuchVolume, "The VolumeId '%s' doesn't exist.", id)
	case omi.KindVm:
		return omi.NotFound(omi.CodeNoSuchVm, "The VmId '%s' doesn't exist.", id)
	case omi.KindTask:
		return omi.NotFound(omi.CodeNoSuchTask, "The TaskId '%s' doesn't exist.", id)
	case omi.KindKeypair:
		return omi.NotFound("5071", "The KeypairId '%s' doesn't exist.", id)
	case omi.KindSecurityGroup:
		return omi.NotFound("5020", "The SecurityGroupId '%s' doesn't exist.", id)
	case omi.KindPublicIp:
		return omi.NotFound("5025", "The PublicIpId '%s' doesn't exist.", id)
	}
	if f := extraNotFound[kind]; f != nil {
		return f(id)
	}
	return omi.NotFound(omi.CodeNoSuchResource, "The resource '%s' doesn't exist.", id)
}

// extraNotFound gives the not-found error of kinds registered by other
// files of the package (the Net gateways).
var extraNotFound = map[omi.Kind]func(id string) error{}

// extraTagged materializes, for a tag change, a resource that exists
// without a record yet (the account's default DHCP options set): it returns
// nil, nil when id is not such a resource.
var extraTagged = map[omi.Kind]func(s *Service, tx omi.Tx, c *omi.Caller, id string) (omi.Tagged, error){}

type CreateTagsRequest struct {
	Base
	ResourceIds []string  `json:"ResourceIds"`
	Tags        []omi.Tag `json:"Tags"`

	// noValue is the index+1 of the first tag sent without Value.
	noValue int
}

// UnmarshalJSON notes a tag sent without Value: the spec requires it
// (ResourceTag: required Key and Value) and the real API refuses such a
// tag, where an empty Value is a valid tag.
func (r *CreateTagsRequest) UnmarshalJSON(b []byte) error {
	type plain CreateTagsRequest
	if err := json.Unmarshal(b, (*plain)(r)); err != nil {
		return err
	}
	var raw struct {
		Tags []map[string]json.RawMessage `json:"Tags"`
	}
	if json.Unmarshal(b, &raw) == nil {
		for i, t := range raw.Tags {
			if v, ok := t["Value"]; !ok || string(v) == "null" {
				r.noValue = i + 1
				break
			}
		}
	}
	return nil
}

type CreateTagsResponse struct{}

// CreateTags adds or replaces tags on resources the caller owns. It changes
// all the resources or none.
func (s *Service) CreateTags(ctx context.Context, c *omi.Caller, in *CreateTagsRequest) (*CreateTagsResponse, error) {
	if len(in.ResourceIds) == 0 || len(in.Tags) == 0 {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "ResourceIds and Tags are required")
	}
	if in.noValue > 0 {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "Tags[%d] has no Value (it is required, and may be empty)", in.noValue-1)
	}
	for _, t := range in.Tags {
		if e := omi.CheckTag(t); e != nil {
			return nil, e
		}
	}
	err := s.retag(ctx, c, in.ResourceIds, func(tags *[]omi.Tag) {
		for _, t := range in.Tags {
			*tags = omi.SetTag(*tags, t.Key, t.Value)
		}
	})
	if err != nil {
		return nil, err
	}
	return &CreateTagsResponse{}, nil
}

// TagToDelete is a tag of DeleteTags: without Value every value of the key
// goes; with one, only that exact pair.
type TagToDelete struct {
	Key   string  `json:"Key"`
	Value *string `json:"Value"`
}

type DeleteTagsRequest struct {
	Base
	ResourceIds []string      `json:"ResourceIds"`
	Tags        []TagToDelete `json:"Tags"`
}
type DeleteTagsResponse struct{}

// DeleteTags removes tags from resources the caller owns.
func (s *Service) DeleteTags(ctx context.Context, c *omi.Caller, in *DeleteTagsRequest) (*DeleteTagsResponse, error) {
	if len(in.ResourceIds) == 0 || len(in.Tags) == 0 {
		return nil, omi.Invalid(omi.CodeInvalidParameter, "ResourceIds and Tags are required")
	}
	for _, t := range in.Tags {
		if t.Key == "" {
			return nil, omi.Invalid(omi.CodeInvalidTagKey, "tag key must not be empty")
		}
	}
	err := s.retag(ctx, c, in.ResourceIds, func(tags *[]omi.Tag) {
		for _, t := range in.Tags {
			*tags = omi.RemoveTag(*tags, t.Key, t.Value)
		}
	})
	if err != nil {
		return nil, err
	}
	return &DeleteTagsResponse{}, nil
}

type FiltersTag struct {
	Keys          []string `json:"Keys"`
	ResourceIds   []string `json:"ResourceIds"`
	ResourceTypes []string `json:"ResourceTypes"`
	Values        []string `json:"Values"`
}

// ResourceTagOut is one tag of ReadTags (ResourceTag with its resource).
type ResourceTagOut struct {
	Key          string `json:"Key"`
	ResourceId   string `json:"ResourceId"`
	ResourceType string `json:"ResourceType"`
	Value        string `json:"Value"`
}

type ReadTagsRequest struct {
	Base
	Paging
	Filters *FiltersTag `json:"Filters"`
}
type ReadTagsResponse struct {
	Tags          []ResourceTagOut `json:"Tags"`
	NextPageToken string           `json:"NextPageToken,omitempty"`
}

// tagResourceType is the ResourceType ReadTags answers for a kind. The
// spec lists "instance" for VMs, and the ResourceTypes filter takes it,
// but the real API answers "vm" (terraform-provider-outscale's acceptance
// test TestAccVM_WithTagDataSource expects resource_type "vm"); the filter
// takes both.
func tagResourceType(kind omi.Kind) string {
	if kind == omi.KindVm {
		return "vm"
	}
	return string(kind)
}

// ReadTags lists the tags of the caller's resources.
func (s *Service) ReadTags(ctx context.Context, c *omi.Caller, in *ReadTagsRequest) (*ReadTagsResponse, error) {
	f := in.Filters
	if f == nil {
		f = &FiltersTag{}
	}
	var out []ResourceTagOut
	err := s.view(ctx, func(tx omi.Tx) error {
		for _, kind := range taggedKinds {
			wire := tagResourceType(kind)
			if !anyOf(f.ResourceTypes, string(kind)) && !anyOf(f.ResourceTypes, wire) {
				continue
			}
			q := omi.Query{Kind: kind, Owners: []string{c.AccountID()}, IDs: f.ResourceIds}
			err := tx.Scan(q, func(rec omi.Record) (bool, error) {
				r, err := tagDecoders[kind](rec)
				if err != nil {
					return false, err
				}
				for _, t := range *r.TagList() {
					if anyOf(f.Keys, t.Key) && anyOf(f.Values, t.Value) {
						out = append(out, ResourceTagOut{Key: t.Key, Value: t.Value, ResourceId: rec.ID, ResourceType: wire})
					}
				}
				return true, nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].ResourceId != out[j].ResourceId {
			return out[i].ResourceId < out[j].ResourceId
		}
		return out[i].Key < out[j].Key
	})
	tags, next, err := page(out, in.NextPageToken, in.ResultsPerPage)
	if err != nil {
		return nil, err
	}
	return &ReadTagsResponse{Tags: nonNil(tags), NextPageToken: next}, nil
}
