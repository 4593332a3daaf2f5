terraform {
  required_providers {
    outscale = {
      source = "outscale/outscale"
    }
  }
}

provider "outscale" {}

variable "suffix" {}

data "outscale_images" "official" {
  filter {
    name   = "account_aliases"
    values = ["Outscale"]
  }
  filter {
    name   = "image_names"
    values = ["Ubuntu*"]
  }
}

# A Net with a public and a private subnet, an internet service for the
# public one and a NAT service for the private one, as most real
# deployments are laid out.
resource "outscale_net" "main" {
  ip_range = "10.20.0.0/16"
  tags {
    key   = "name"
    value = "main-${var.suffix}"
  }
}

resource "outscale_subnet" "public" {
  net_id                  = outscale_net.main.net_id
  ip_range                = "10.20.1.0/24"
  subregion_name          = "eu-west-2a"
  map_public_ip_on_launch = false
  tags {
    key   = "tier"
    value = "public"
  }
}

resource "outscale_subnet" "private" {
  net_id         = outscale_net.main.net_id
  ip_range       = "10.20.2.0/24"
  subregion_name = "eu-west-2b"
}

resource "outscale_internet_service" "igw" {
  tags {
    key   = "name"
    value = "igw-${var.suffix}"
  }
}

resource "outscale_internet_service_link" "igw" {
  internet_service_id = outscale_internet_service.igw.internet_service_id
  net_id              = outscale_net.main.net_id
}

resource "outscale_route_table" "public" {
  net_id = outscale_net.main.net_id
}

resource "outscale_route" "default" {
  destination_ip_range = "0.0.0.0/0"
  gateway_id           = outscale_internet_service.igw.internet_service_id
  route_table_id       = outscale_route_table.public.route_table_id
  depends_on           = [outscale_internet_service_link.igw]
}

resource "outscale_route_table_link" "public" {
  subnet_id      = outscale_subnet.public.subnet_id
  route_table_id = outscale_route_table.public.route_table_id
}

resource "outscale_public_ip" "nat" {}

resource "outscale_nat_service" "nat" {
  subnet_id    = outscale_subnet.public.subnet_id
  public_ip_id = outscale_public_ip.nat.public_ip_id
  depends_on   = [outscale_route.default]
}

resource "outscale_route_table" "private" {
  net_id = outscale_net.main.net_id
}

resource "outscale_route" "private_default" {
  destination_ip_range = "0.0.0.0/0"
  nat_service_id       = outscale_nat_service.nat.nat_service_id
  route_table_id       = outscale_route_table.private.route_table_id
}

resource "outscale_route_table_link" "private" {
  subnet_id      = outscale_subnet.private.subnet_id
  route_table_id = outscale_route_table.private.route_table_id
}

resource "outscale_security_group" "web" {
  security_group_name = "net-web-${var.suffix}"
  description         = "web servers in the Net"
  net_id              = outscale_net.main.net_id
}

resource "outscale_security_group_rule" "https_in" {
  flow              = "Inbound"
  security_group_id = outscale_security_group.web.security_group_id
  from_port_range   = 443
  to_port_range     = 443
  ip_protocol       = "tcp"
  ip_range          = "0.0.0.0/0"
}

resource "outscale_security_group_rule" "db_out" {
  flow              = "Outbound"
  security_group_id = outscale_security_group.web.security_group_id
  from_port_range   = 5432
  to_port_range     = 5432
  ip_protocol       = "tcp"
  ip_range          = "10.20.2.0/24"
}

resource "outscale_keypair" "net" {
  keypair_name = "tf-net-${var.suffix}"
}

resource "outscale_vm" "web" {
  image_id           = data.outscale_images.official.images[0].image_id
  vm_type            = "tinav6.c1r1p2"
  keypair_name       = outscale_keypair.net.keypair_name
  subnet_id          = outscale_subnet.public.subnet_id
  security_group_ids = [outscale_security_group.web.security_group_id]
  tags {
    key   = "name"
    value = "net-web-${var.suffix}"
  }
}

# A subnet whose VMs get a public IP at launch (MapPublicIpOnLaunch).
resource "outscale_subnet" "mapped" {
  net_id                  = outscale_net.main.net_id
  ip_range                = "10.20.3.0/24"
  subregion_name          = "eu-west-2a"
  map_public_ip_on_launch = true
}

resource "outscale_vm" "mapped" {
  image_id           = data.outscale_images.official.images[0].image_id
  vm_type            = "tinav6.c1r1p2"
  subnet_id          = outscale_subnet.mapped.subnet_id
  security_group_ids = [outscale_security_group.web.security_group_id]
}

resource "outscale_public_ip" "web" {}

resource "outscale_public_ip_link" "web" {
  vm_id     = outscale_vm.web.vm_id
  public_ip = outscale_public_ip.web.public_ip
}

resource "outscale_nic" "extra" {
  subnet_id          = outscale_subnet.private.subnet_id
  security_group_ids = [outscale_security_group.web.security_group_id]
  description        = "second interface"
  private_ips {
    is_primary = true
    private_ip = "10.20.2.10"
  }
}

# A second interface linked to the web VM, with a secondary private IP
# (on a NIC whose private_ips terraform does not manage: both on one NIC
# would fight, as the provider documents).
resource "outscale_nic" "second" {
  subnet_id          = outscale_subnet.public.subnet_id
  security_group_ids = [outscale_security_group.web.security_group_id]
  description        = "linked interface"
}

resource "outscale_nic_link" "second" {
  device_number = "1"
  vm_id         = outscale_vm.web.vm_id
  nic_id        = outscale_nic.second.nic_id
}

resource "outscale_nic_private_ip" "second" {
  nic_id      = outscale_nic.second.nic_id
  private_ips = ["10.20.1.20"]
}

resource "outscale_net" "peer" {
  ip_range = "10.30.0.0/16"
}

resource "outscale_net_peering" "peer" {
  accepter_net_id = outscale_net.peer.net_id
  source_net_id   = outscale_net.main.net_id
}

resource "outscale_net_peering_acceptation" "peer" {
  net_peering_id = outscale_net_peering.peer.net_peering_id
}

resource "outscale_route" "to_peer" {
  destination_ip_range = "10.30.0.0/16"
  net_peering_id       = outscale_net_peering.peer.net_peering_id
  route_table_id       = outscale_route_table.private.route_table_id
  depends_on           = [outscale_net_peering_acceptation.peer]
}

resource "outscale_dhcp_option" "corp" {
  domain_name         = "corp.example.com"
  domain_name_servers = ["10.20.0.2", "10.20.0.3"]
  ntp_servers         = ["10.20.0.4"]
  tags {
    key   = "name"
    value = "corp-${var.suffix}"
  }
}

data "outscale_net" "main" {
  filter {
    name   = "net_ids"
    values = [outscale_net.main.net_id]
  }
}
data "outscale_nets" "both" {
  filter {
    name   = "net_ids"
    values = [outscale_net.main.net_id, outscale_net.peer.net_id]
  }
}
data "outscale_subnet" "public" {
  filter {
    name   = "subnet_ids"
    values = [outscale_subnet.public.subnet_id]
  }
}
data "outscale_subnets" "main" {
  filter {
    name   = "net_ids"
    values = [outscale_net.main.net_id]
  }
  depends_on = [outscale_subnet.public, outscale_subnet.private, outscale_subnet.mapped]
}
data "outscale_nic" "extra" {
  filter {
    name   = "nic_ids"
    values = [outscale_nic.extra.nic_id]
  }
}
data "outscale_nics" "main" {
  filter {
    name   = "net_ids"
    values = [outscale_net.main.net_id]
  }
  depends_on = [outscale_nic.extra, outscale_vm.web, outscale_vm.mapped, outscale_nic_link.second, outscale_nic_private_ip.second]
}
data "outscale_internet_service" "igw" {
  filter {
    name   = "internet_service_ids"
    values = [outscale_internet_service.igw.internet_service_id]
  }
  depends_on = [outscale_internet_service_link.igw]
}
data "outscale_internet_services" "all" {
  filter {
    name   = "link_net_ids"
    values = [outscale_net.main.net_id]
  }
  depends_on = [outscale_internet_service_link.igw]
}
data "outscale_route_table" "private" {
  filter {
    name   = "route_table_ids"
    values = [outscale_route_table.private.route_table_id]
  }
  depends_on = [outscale_route.private_default, outscale_route.to_peer, outscale_route_table_link.private]
}
data "outscale_route_tables" "main" {
  filter {
    name   = "net_ids"
    values = [outscale_net.main.net_id]
  }
  depends_on = [outscale_route_table_link.public, outscale_route_table_link.private]
}
data "outscale_nat_service" "nat" {
  filter {
    name   = "nat_service_ids"
    values = [outscale_nat_service.nat.nat_service_id]
  }
}
data "outscale_nat_services" "all" {
  filter {
    name   = "net_ids"
    values = [outscale_net.main.net_id]
  }
  depends_on = [outscale_nat_service.nat]
}
data "outscale_net_peering" "peer" {
  filter {
    name   = "net_peering_ids"
    values = [outscale_net_peering.peer.net_peering_id]
  }
  depends_on = [outscale_net_peering_acceptation.peer]
}
data "outscale_net_peerings" "all" {
  filter {
    name   = "source_net_net_ids"
    values = [outscale_net.main.net_id]
  }
  depends_on = [outscale_net_peering_acceptation.peer]
}
data "outscale_dhcp_option" "corp" {
  filter {
    name   = "dhcp_options_set_ids"
    values = [outscale_dhcp_option.corp.dhcp_options_set_id]
  }
}
data "outscale_dhcp_options" "all" {
  filter {
    name   = "domain_names"
    values = ["corp.example.com"]
  }
  depends_on = [outscale_dhcp_option.corp]
}
data "outscale_quotas" "all" {
  depends_on = [outscale_net.main, outscale_net.peer]
}

output "checks" {
  value = {
    subnets     = length(data.outscale_subnets.main.subnets)
    nics        = length(data.outscale_nics.main.nics)
    route_table = length(data.outscale_route_table.private.routes)
    peering     = [for st in data.outscale_net_peering.peer.state : st.name]
    mapped_ip   = outscale_vm.mapped.public_ip
  }
}

# The peer Net takes the main Net's DHCP options set (a default set, which
# outlives both).
resource "outscale_net_attributes" "peer" {
  net_id              = outscale_net.peer.net_id
  dhcp_options_set_id = outscale_net.main.dhcp_options_set_id
}

data "outscale_net_attributes" "peer" {
  net_id     = outscale_net_attributes.peer.net_id
  depends_on = [outscale_net_attributes.peer]
}
