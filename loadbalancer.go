package omi

// Load balancers (LBU) and their listener rules. omi keeps them as
// metadata with the real API's rules, as it keeps Nets: no packet is
// balanced. A load balancer is named by its owner (LoadBalancerName, unique
// in the account), so its store id is "<account id>/<name>".

// Kinds of the load balancer resources. Load balancers are tagged through
// their own calls (CreateLoadBalancerTags), not CreateTags.
const (
	KindLoadBalancer Kind = "loadbalancer"
	KindListenerRule Kind = "listenerrule"
)

// States and types of a load balancer. omi creates them active: nothing
// is provisioned.
const (
	LoadBalancerActive   = "active"
	LoadBalancerInternet = "internet-facing"
	LoadBalancerInternal = "internal"
	// ElbSecurityGroupAccount and ElbSecurityGroupName are the
	// SourceSecurityGroup of a load balancer of the public Cloud, as the
	// real cloud reports it (recorded states of the terraform provider,
	// load_balancer_vm_health/TF-92): a group of OUTSCALE's own account.
	ElbSecurityGroupAccount = "outscale-elb"
	ElbSecurityGroupName    = "outscale-elb-sg"
)

// LoadBalancerAPI is the LoadBalancer object of the API.
type LoadBalancerAPI struct {
	AccessLog                        AccessLog                        `json:"AccessLog"`
	ApplicationStickyCookiePolicies  []ApplicationStickyCookiePolicy  `json:"ApplicationStickyCookiePolicies"`
	BackendIps                       []string                         `json:"BackendIps"`
	BackendVmIds                     []string                         `json:"BackendVmIds"`
	DnsName                          string                           `json:"DnsName"`
	HealthCheck                      HealthCheck                      `json:"HealthCheck"`
	Listeners                        []Listener                       `json:"Listeners"`
	LoadBalancerName                 string                           `json:"LoadBalancerName"`
	LoadBalancerStickyCookiePolicies []LoadBalancerStickyCookiePolicy `json:"LoadBalancerStickyCookiePolicies"`
	LoadBalancerType                 string                           `json:"LoadBalancerType"`
	NetId                            string                           `json:"NetId,omitempty"`
	PublicIp                         string                           `json:"PublicIp,omitempty"`
	SecuredCookies                   bool                             `json:"SecuredCookies"`
	SecurityGroups                   []string                         `json:"SecurityGroups"`
	SourceSecurityGroup              SourceSecurityGroup              `json:"SourceSecurityGroup"`
	State                            string                           `json:"State"`
	Subnets                          []string                         `json:"Subnets"`
	SubregionNames                   []string                         `json:"SubregionNames"`
	Tags                             []Tag                            `json:"Tags"`
}

// LoadBalancer is a stored load balancer: the API object plus what omi
// keeps beside it.
type LoadBalancer struct {
	LoadBalancerAPI
	AccountId string `json:"-"`
	// PublicIpId is the account's public IP the load balancer holds, when
	// it was given one (CreateLoadBalancer or UpdateLoadBalancer
	// PublicIp); "" for an address of OUTSCALE's.
	PublicIpId string `json:"OmiPublicIpId,omitempty"`
	// Seq orders an account's load balancers by creation.
	Seq int64 `json:"OmiSeq,omitempty"`
}

// LoadBalancerID is the store id of an account's load balancer.
func LoadBalancerID(account, name string) string { return account + "/" + name }

func (l *LoadBalancer) Kind() Kind                   { return KindLoadBalancer }
func (l *LoadBalancer) ResourceID() string           { return LoadBalancerID(l.AccountId, l.LoadBalancerName) }
func (l *LoadBalancer) Owner() string                { return l.AccountId }
func (l *LoadBalancer) IndexName() string            { return l.LoadBalancerName }
func (l *LoadBalancer) Visibility() (bool, []string) { return false, nil }

// SetOwner restores the owner, which the API object does not carry.
func (l *LoadBalancer) SetOwner(id string) { l.AccountId = id }

// Normalize replaces nil lists by empty ones, as the API writes them.
func (l *LoadBalancer) Normalize() {
	for _, p := range []*[]string{&l.BackendIps, &l.BackendVmIds, &l.SecurityGroups, &l.Subnets, &l.SubregionNames} {
		if *p == nil {
			*p = []string{}
		}
	}
	if l.ApplicationStickyCookiePolicies == nil {
		l.ApplicationStickyCookiePolicies = []ApplicationStickyCookiePolicy{}
	}
	if l.LoadBalancerStickyCookiePolicies == nil {
		l.LoadBalancerStickyCookiePolicies = []LoadBalancerStickyCookiePolicy{}
	}
	if l.Listeners == nil {
		l.Listeners = []Listener{}
	}
	for i := range l.Listeners {
		if l.Listeners[i].PolicyNames == nil {
			l.Listeners[i].PolicyNames = []string{}
		}
	}
	if l.Tags == nil {
		l.Tags = []Tag{}
	}
}

// AccessLog says where a load balancer would publish its access logs.
type AccessLog struct {
	IsEnabled           bool   `json:"IsEnabled"`
	OsuBucketName       string `json:"OsuBucketName,omitempty"`
	OsuBucketPrefix     string `json:"OsuBucketPrefix,omitempty"`
	PublicationInterval int    `json:"PublicationInterval"`
}

// HealthCheck is how a load balancer would probe its backend VMs.
type HealthCheck struct {
	CheckInterval      int    `json:"CheckInterval"`
	HealthyThreshold   int    `json:"HealthyThreshold"`
	Path               string `json:"Path,omitempty"`
	Port               int    `json:"Port"`
	Protocol           string `json:"Protocol"`
	Timeout            int    `json:"Timeout"`
	UnhealthyThreshold int    `json:"UnhealthyThreshold"`
}

// Listener is a port a load balancer listens on and where it forwards.
type Listener struct {
	BackendPort          int      `json:"BackendPort"`
	BackendProtocol      string   `json:"BackendProtocol"`
	LoadBalancerPort     int      `json:"LoadBalancerPort"`
	LoadBalancerProtocol string   `json:"LoadBalancerProtocol"`
	PolicyNames          []string `json:"PolicyNames"`
	ServerCertificateId  string   `json:"ServerCertificateId,omitempty"`
}

// ApplicationStickyCookiePolicy keeps sessions on one VM by an
// application cookie.
type ApplicationStickyCookiePolicy struct {
	CookieName string `json:"CookieName"`
	PolicyName string `json:"PolicyName"`
}

// LoadBalancerStickyCookiePolicy keeps sessions on one VM by a cookie of
// the load balancer.
type LoadBalancerStickyCookiePolicy struct {
	CookieExpirationPeriod int    `json:"CookieExpirationPeriod"`
	PolicyName             string `json:"PolicyName"`
}

// SourceSecurityGroup is the group backend VMs may admit traffic from.
type SourceSecurityGroup struct {
	SecurityGroupAccountId string `json:"SecurityGroupAccountId"`
	SecurityGroupName      string `json:"SecurityGroupName"`
}

// ListenerRuleAPI is the ListenerRule object of the API: it forwards the
// requests of one listener that match a host or path pattern to some VMs.
type ListenerRuleAPI struct {
	Action           string   `json:"Action"`
	HostNamePattern  string   `json:"HostNamePattern,omitempty"`
	ListenerId       int      `json:"ListenerId"`
	ListenerRuleId   int      `json:"ListenerRuleId"`
	ListenerRuleName string   `json:"ListenerRuleName"`
	PathPattern      string   `json:"PathPattern,omitempty"`
	Priority         int      `json:"Priority"`
	VmIds            []string `json:"VmIds"`
}

// ListenerRule is a stored listener rule. Its name is unique in the
// account; its store id is "<account id>/<name>".
type ListenerRule struct {
	ListenerRuleAPI
	AccountId string `json:"-"`
	// LoadBalancerName and LoadBalancerPort name the rule's listener.
	LoadBalancerName string `json:"OmiLoadBalancerName"`
	LoadBalancerPort int    `json:"OmiLoadBalancerPort"`
}

func (r *ListenerRule) Kind() Kind                   { return KindListenerRule }
func (r *ListenerRule) ResourceID() string           { return LoadBalancerID(r.AccountId, r.ListenerRuleName) }
func (r *ListenerRule) Owner() string                { return r.AccountId }
func (r *ListenerRule) IndexName() string            { return r.LoadBalancerName }
func (r *ListenerRule) Visibility() (bool, []string) { return false, nil }

// SetOwner restores the owner, which the API object does not carry.
func (r *ListenerRule) SetOwner(id string) { r.AccountId = id }
