terraform {
  required_providers {
    outscale = {
      source = "outscale/outscale"
    }
  }
}

provider "outscale" {}

variable "suffix" {}

# A Net whose route table gets the routes of a virtual gateway
# (propagation) and the route of a Net access point to the region's API.
resource "outscale_net" "gw" {
  ip_range = "10.30.0.0/16"
  tags {
    key   = "name"
    value = "gw-${var.suffix}"
  }
}

resource "outscale_route_table" "gw" {
  net_id = outscale_net.gw.net_id
}

resource "outscale_virtual_gateway" "gw" {
  connection_type = "ipsec.1"
  tags {
    key   = "name"
    value = "vgw-${var.suffix}"
  }
}

resource "outscale_virtual_gateway_link" "gw" {
  virtual_gateway_id = outscale_virtual_gateway.gw.virtual_gateway_id
  net_id             = outscale_net.gw.net_id
}

resource "outscale_virtual_gateway_route_propagation" "gw" {
  enable             = true
  virtual_gateway_id = outscale_virtual_gateway_link.gw.virtual_gateway_id
  route_table_id     = outscale_route_table.gw.route_table_id
}

data "outscale_virtual_gateway" "gw" {
  filter {
    name   = "virtual_gateway_ids"
    values = [outscale_virtual_gateway_link.gw.virtual_gateway_id]
  }
}

data "outscale_virtual_gateways" "gw" {
  filter {
    name   = "link_net_ids"
    values = [outscale_virtual_gateway_link.gw.net_id]
  }
  filter {
    name   = "tags"
    values = ["name=vgw-${var.suffix}"]
  }
}

data "outscale_net_access_point_services" "all" {}

locals {
  api_service = [for s in data.outscale_net_access_point_services.all.services : s.service_name if endswith(s.service_name, ".api")][0]
}

data "outscale_net_access_point_services" "api" {
  filter {
    name   = "service_names"
    values = [local.api_service]
  }
}

resource "outscale_net_access_point" "api" {
  net_id          = outscale_net.gw.net_id
  route_table_ids = [outscale_route_table.gw.route_table_id]
  service_name    = data.outscale_net_access_point_services.api.services[0].service_name
  tags {
    key   = "name"
    value = "nap-${var.suffix}"
  }
}

data "outscale_net_access_point" "api" {
  filter {
    name   = "net_access_point_ids"
    values = [outscale_net_access_point.api.net_access_point_id]
  }
}

data "outscale_net_access_points" "gw" {
  filter {
    name   = "net_ids"
    values = [outscale_net_access_point.api.net_id]
  }
}
