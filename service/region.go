package service

import (
	"context"
	"encoding/base64"
	"slices"
	"strconv"
	"strings"

	"github.com/omiproject/omi"
)

// regionFacts are the static facts of the region: subregions, VM types and
// product types.
type regionFacts struct {
	subregions   []Subregion
	vmTypes      []VmTypeOut
	productTypes []ProductType
	// sellers maps a marketplace product code to its seller's account.
	sellers map[string]string
}

// Regions lists the public OUTSCALE regions (the spec's server enum).
var Regions = []string{"ap-northeast-1", "cloudgouv-eu-west-1", "eu-west-2", "us-east-2", "us-west-1"}

// Windows product codes. Terraform treats 0001, 0004 and 0006 as not
// Windows; omi's catalogue uses 0002 and 0003 for Windows images.
var windowsProductCodes = []string{"0002", "0003"}

// IsWindows reports whether a product code list marks a Windows OMI.
func IsWindows(codes []string) bool {
	for _, c := range codes {
		if slices.Contains(windowsProductCodes, c) {
			return true
		}
	}
	return false
}

// locationCodes are eu-west-2's data centres by subregion letter, as the
// real cloud lists them (the provider's recorded ReadSubregions: a PAR1,
// b PAR4, c PAR7). Other letters get no code.
var locationCodes = map[string]string{"a": "PAR1", "b": "PAR4", "c": "PAR7"}

func newRegionFacts(region string, letters []string, market []MarketplaceProduct) regionFacts {
	if len(letters) == 0 {
		letters = []string{"a", "b", "c"}
	}
	f := regionFacts{
		productTypes: []ProductType{
			{ProductTypeId: "0001", Description: "Linux", Vendor: "Outscale"},
			{ProductTypeId: "0002", Description: "Windows Server", Vendor: "Microsoft"},
			{ProductTypeId: "0003", Description: "Windows Server with SQL Server", Vendor: "Microsoft"},
			{ProductTypeId: "0004", Description: "Red Hat Enterprise Linux", Vendor: "Red Hat"},
			{ProductTypeId: "0006", Description: "Linux (other distributions)", Vendor: "Outscale"},
		},
	}
	for _, l := range letters {
		f.subregions = append(f.subregions, Subregion{SubregionName: region + l, RegionName: region, State: "available", LocationCode: locationCodes[l]})
	}
	for _, m := range market {
		f.productTypes = append(f.productTypes, ProductType{ProductTypeId: m.ProductTypeId, Description: m.Description, Vendor: m.Vendor})
	}
	f.sellers = map[string]string{}
	for _, m := range market {
		f.sellers[m.ProductTypeId] = m.SellerAccountId
	}
	for gen := 3; gen <= 7; gen++ {
		for _, cores := range []int{1, 2, 4, 8, 16, 32} {
			for _, ratio := range []int{1, 2, 4, 8} {
				for perf := 1; perf <= 3; perf++ {
					t := omi.VmType{Generation: gen, VCores: cores, MemoryGiB: cores * ratio, Performance: perf}
					f.vmTypes = append(f.vmTypes, VmTypeOut{VmTypeName: t.Name(), VcoreCount: cores,
						MemorySize: float64(t.MemoryGiB), MaxPrivateIps: 30, Eth: 8, BsuOptimized: true,
						VolumeCount: 0, VolumeSize: 0, EphemeralsType: ""})
				}
			}
		}
	}
	// Legacy types the real cloud still lists, as it describes them (the
	// provider's recorded TF-171, steps 1 and 2).
	f.vmTypes = append(f.vmTypes,
		VmTypeOut{VmTypeName: "m3.large", VcoreCount: 2, MemorySize: 8, MaxPrivateIps: 10, Eth: 8, VolumeCount: 1, VolumeSize: 32},
		VmTypeOut{VmTypeName: "m3.xlarge", VcoreCount: 4, MemorySize: 15, MaxPrivateIps: 15, Eth: 8, BsuOptimized: true, VolumeCount: 2, VolumeSize: 40},
		VmTypeOut{VmTypeName: "mv3.xlarge", VcoreCount: 4, MemorySize: 15, MaxPrivateIps: 15, Eth: 8, BsuOptimized: true, VolumeCount: 2, VolumeSize: 40})
	return f
}

// page applies NextPageToken/ResultsPerPage to a static list whose items
// have a stable order; the token is the base64 index of the next item.
func page[T any](items []T, token string, perPage *int) ([]T, string, error) {
	start := 0
	if token != "" {
		b, err := base64.StdEncoding.DecodeString(token)
		n, err2 := strconv.Atoi(string(b))
		if err != nil || err2 != nil || n < 0 || n > len(items) {
			return nil, "", omi.Invalid(omi.CodeInvalidPageToken, "invalid NextPageToken")
		}
		start = n
	}
	limit, err := resultsPerPage(perPage)
	if err != nil {
		return nil, "", err
	}
	items = items[start:]
	if limit == 0 || len(items) <= limit {
		return items, "", nil
	}
	return items[:limit], base64.StdEncoding.EncodeToString([]byte(strconv.Itoa(start + limit))), nil
}

// resultsPerPage validates ResultsPerPage: absent means no limit.
func resultsPerPage(p *int) (int, error) {
	if p == nil {
		return 0, nil
	}
	if *p < 1 || *p > 1000 {
		return 0, omi.Invalid(omi.CodeInvalidValue, "ResultsPerPage must be between 1 and 1000")
	}
	return *p, nil
}

// Paging is embedded in every Read request.
type Paging struct {
	NextPageToken  string `json:"NextPageToken"`
	ResultsPerPage *int   `json:"ResultsPerPage"`
}

// Region is an entry of ReadRegions.
type Region struct {
	Endpoint   string `json:"Endpoint"`
	RegionName string `json:"RegionName"`
}
type ReadRegionsRequest struct{ Base }
type ReadRegionsResponse struct {
	Regions []Region `json:"Regions"`
}

// ReadRegions lists the regions of the deployment, by name, as the real
// cloud lists all of its own (the provider's recorded state shows
// eu-west-2, us-east-2 and us-west-1 with their api.<region>.outscale.com
// endpoints). One omi process serves one region: the others are other omi
// processes, given by the configuration's regions section; without it only
// the served region is listed, so that no client is sent to an endpoint
// that is not there.
func (s *Service) ReadRegions(ctx context.Context, c *omi.Caller, in *ReadRegionsRequest) (*ReadRegionsResponse, error) {
	out := slices.Clone(s.cfg.Regions)
	if !slices.ContainsFunc(out, func(r Region) bool { return r.RegionName == s.cfg.Region }) {
		out = append(out, Region{RegionName: s.cfg.Region, Endpoint: s.cfg.Endpoint})
	}
	slices.SortFunc(out, func(a, b Region) int { return strings.Compare(a.RegionName, b.RegionName) })
	return &ReadRegionsResponse{Regions: out}, nil
}

type Subregion struct {
	LocationCode  string `json:"LocationCode"`
	RegionName    string `json:"RegionName"`
	State         string `json:"State"`
	SubregionName string `json:"SubregionName"`
}
type FiltersSubregion struct {
	RegionNames    []string `json:"RegionNames"`
	States         []string `json:"States"`
	SubregionNames []string `json:"SubregionNames"`
}
type ReadSubregionsRequest struct {
	Base
	Paging
	Filters *FiltersSubregion `json:"Filters"`
}
type ReadSubregionsResponse struct {
	Subregions    []Subregion `json:"Subregions"`
	NextPageToken string      `json:"NextPageToken,omitempty"`
}

// ReadSubregions lists the subregions of the served region (a, b and c
// unless configured otherwise).
func (s *Service) ReadSubregions(ctx context.Context, c *omi.Caller, in *ReadSubregionsRequest) (*ReadSubregionsResponse, error) {
	f := in.Filters
	if f == nil {
		f = &FiltersSubregion{}
	}
	var out []Subregion
	for _, sr := range s.region.subregions {
		if anyOf(f.RegionNames, sr.RegionName) && anyOf(f.States, sr.State) && anyOf(f.SubregionNames, sr.SubregionName) {
			out = append(out, sr)
		}
	}
	out, next, err := page(out, in.NextPageToken, in.ResultsPerPage)
	if err != nil {
		return nil, err
	}
	return &ReadSubregionsResponse{Subregions: nonNil(out), NextPageToken: next}, nil
}

// validSubregion reports whether name is a subregion of this region.
func (s *Service) validSubregion(name string) bool {
	for _, sr := range s.region.subregions {
		if sr.SubregionName == name {
			return true
		}
	}
	return false
}

type VmTypeOut struct {
	BsuOptimized   bool    `json:"BsuOptimized"`
	EphemeralsType string  `json:"EphemeralsType,omitempty"`
	Eth            int     `json:"Eth"`
	Gpu            int     `json:"Gpu"`
	MaxPrivateIps  int     `json:"MaxPrivateIps"`
	MemorySize     float64 `json:"MemorySize"`
	VcoreCount     int     `json:"VcoreCount"`
	VmTypeName     string  `json:"VmTypeName"`
	VolumeCount    int     `json:"VolumeCount"`
	VolumeSize     int     `json:"VolumeSize"`
}
type FiltersVmType struct {
	BsuOptimized    *bool     `json:"BsuOptimized"`
	EphemeralsTypes []string  `json:"EphemeralsTypes"`
	Eths            []int     `json:"Eths"`
	Gpus            []int     `json:"Gpus"`
	MemorySizes     []float64 `json:"MemorySizes"`
	VcoreCounts     []int     `json:"VcoreCounts"`
	VmTypeNames     []string  `json:"VmTypeNames"`
	VolumeCounts    []int     `json:"VolumeCounts"`
	VolumeSizes     []int     `json:"VolumeSizes"`
}
type ReadVmTypesRequest struct {
	Base
	Paging
	Filters *FiltersVmType `json:"Filters"`
}
type ReadVmTypesResponse struct {
	VmTypes       []VmTypeOut `json:"VmTypes"`
	NextPageToken string      `json:"NextPageToken,omitempty"`
}

// ReadVmTypes lists the tinavW.cXrYpZ family, generations 3 to 7.
func (s *Service) ReadVmTypes(ctx context.Context, c *omi.Caller, in *ReadVmTypesRequest) (*ReadVmTypesResponse, error) {
	f := in.Filters
	if f == nil {
		f = &FiltersVmType{}
	}
	var out []VmTypeOut
	for _, t := range s.region.vmTypes {
		if (f.BsuOptimized == nil || *f.BsuOptimized == t.BsuOptimized) && anyOf(f.EphemeralsTypes, t.EphemeralsType) &&
			anyOf(f.Eths, t.Eth) && anyOf(f.Gpus, t.Gpu) && anyOf(f.MemorySizes, t.MemorySize) &&
			anyOf(f.VcoreCounts, t.VcoreCount) && anyOf(f.VmTypeNames, t.VmTypeName) &&
			anyOf(f.VolumeCounts, t.VolumeCount) && anyOf(f.VolumeSizes, t.VolumeSize) {
			out = append(out, t)
		}
	}
	out, next, err := page(out, in.NextPageToken, in.ResultsPerPage)
	if err != nil {
		return nil, err
	}
	return &ReadVmTypesResponse{VmTypes: nonNil(out), NextPageToken: next}, nil
}

type ProductType struct {
	Description   string `json:"Description"`
	ProductTypeId string `json:"ProductTypeId"`
	Vendor        string `json:"Vendor"`
}
type FiltersProductType struct {
	ProductTypeIds []string `json:"ProductTypeIds"`
}
type ReadProductTypesRequest struct {
	Base
	Paging
	Filters *FiltersProductType `json:"Filters"`
}
type ReadProductTypesResponse struct {
	ProductTypes  []ProductType `json:"ProductTypes"`
	NextPageToken string        `json:"NextPageToken,omitempty"`
}

// ReadProductTypes lists the product types (OS and license families).
func (s *Service) ReadProductTypes(ctx context.Context, c *omi.Caller, in *ReadProductTypesRequest) (*ReadProductTypesResponse, error) {
	var ids []string
	if in.Filters != nil {
		ids = in.Filters.ProductTypeIds
	}
	var out []ProductType
	for _, p := range s.region.productTypes {
		if anyOf(ids, p.ProductTypeId) {
			out = append(out, p)
		}
	}
	out, next, err := page(out, in.NextPageToken, in.ResultsPerPage)
	if err != nil {
		return nil, err
	}
	return &ReadProductTypesResponse{ProductTypes: nonNil(out), NextPageToken: next}, nil
}

// knownProductCode reports whether code is a listed product type.
func (s *Service) knownProductCode(code string) bool {
	for _, p := range s.region.productTypes {
		if p.ProductTypeId == code {
			return true
		}
	}
	return false
}

type CatalogEntry struct {
	Category      string  `json:"Category"`
	Flags         string  `json:"Flags,omitempty"`
	Operation     string  `json:"Operation"`
	Service       string  `json:"Service"`
	SubregionName string  `json:"SubregionName"`
	Title         string  `json:"Title"`
	Type          string  `json:"Type"`
	UnitPrice     float64 `json:"UnitPrice"`
}
type ReadPublicCatalogRequest struct{ Base }
type ReadPublicCatalogResponse struct {
	Catalog struct {
		Entries []CatalogEntry `json:"Entries"`
	} `json:"Catalog"`
}

// ReadPublicCatalog returns the price list. A self-hosted region charges
// nothing, so the entries that concern images and storage are listed at 0.
func (s *Service) ReadPublicCatalog(ctx context.Context, c *omi.Caller, in *ReadPublicCatalogRequest) (*ReadPublicCatalogResponse, error) {
	out := &ReadPublicCatalogResponse{}
	for _, vt := range []string{omi.VolumeStandard, omi.VolumeGP2, omi.VolumeIO1} {
		out.Catalog.Entries = append(out.Catalog.Entries, CatalogEntry{Category: "storage", Operation: "CreateVolume",
			Service: "TinaOS-FCU", SubregionName: s.cfg.Region, Title: "BSU " + vt + " volume (per GiB-month)",
			Type: "BSU:VolumeUsage:" + vt, Flags: "PER_MONTH"})
	}
	out.Catalog.Entries = append(out.Catalog.Entries, CatalogEntry{Category: "storage", Operation: "Snapshot",
		Service: "TinaOS-FCU", SubregionName: s.cfg.Region, Title: "BSU snapshot (per GiB-month)",
		Type: "Snapshot:Usage", Flags: "PER_MONTH"})
	return out, nil
}

// nonNil turns a nil slice into an empty one so the wire shows [].
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
