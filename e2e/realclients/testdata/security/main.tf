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
    values = ["Debian*"]
  }
}

resource "outscale_keypair" "admin" {
  keypair_name = "tf-admin-${var.suffix}"
}

resource "outscale_security_group" "web" {
  security_group_name = "tf-web-${var.suffix}"
  description         = "web servers"
  tags {
    key   = "role"
    value = "web"
  }
}

resource "outscale_security_group" "admin" {
  security_group_name = "tf-admin-${var.suffix}"
  description         = "admin hosts"
}

resource "outscale_security_group_rule" "http" {
  flow              = "Inbound"
  security_group_id = outscale_security_group.web.security_group_id
  from_port_range   = 80
  to_port_range     = 80
  ip_protocol       = "tcp"
  ip_range          = "0.0.0.0/0"
}

resource "outscale_security_group_rule" "ssh_from_admin" {
  flow              = "Inbound"
  security_group_id = outscale_security_group.web.security_group_id
  rules {
    from_port_range = 22
    to_port_range   = 22
    ip_protocol     = "tcp"
    security_groups_members {
      security_group_id = outscale_security_group.admin.security_group_id
    }
  }
}

resource "outscale_security_group_rule" "https_and_icmp" {
  flow              = "Inbound"
  security_group_id = outscale_security_group.admin.security_group_id
  rules {
    from_port_range = 443
    to_port_range   = 443
    ip_protocol     = "tcp"
    ip_ranges       = ["10.0.0.0/8", "192.168.0.0/16"]
  }
  rules {
    from_port_range = -1
    to_port_range   = -1
    ip_protocol     = "icmp"
    ip_ranges       = ["0.0.0.0/0"]
  }
}

resource "outscale_vm" "web" {
  image_id           = data.outscale_images.official.images[0].image_id
  vm_type            = "tinav6.c2r4p2"
  keypair_name       = outscale_keypair.admin.keypair_name
  security_group_ids = [outscale_security_group.web.security_group_id, outscale_security_group.admin.security_group_id]
  tags {
    key   = "name"
    value = "sg-vm-${var.suffix}"
  }
}

resource "outscale_public_ip" "web" {}

resource "outscale_public_ip_link" "web" {
  vm_id     = outscale_vm.web.vm_id
  public_ip = outscale_public_ip.web.public_ip
}

data "outscale_security_group" "web" {
  filter {
    name   = "security_group_ids"
    values = [outscale_security_group.web.security_group_id]
  }
  depends_on = [outscale_security_group_rule.http, outscale_security_group_rule.ssh_from_admin]
}

data "outscale_security_groups" "all" {
  filter {
    name   = "security_group_names"
    values = [outscale_security_group.web.security_group_name, outscale_security_group.admin.security_group_name]
  }
}

output "rules" {
  value = length(data.outscale_security_group.web.inbound_rules)
}

# The deprecated outscale_tag resource, used as users use it: on what the
# configuration does not manage itself, here the default security group the
# cloud makes with a Net (a tag on a resource whose own tags terraform
# manages would show as drift there).
resource "outscale_net" "tagged" {
  ip_range = "10.7.0.0/16"
}

data "outscale_security_group" "net_default" {
  filter {
    name   = "net_ids"
    values = [outscale_net.tagged.net_id]
  }
  filter {
    name   = "security_group_names"
    values = ["default"]
  }
}

resource "outscale_tag" "net_default" {
  resource_ids = [data.outscale_security_group.net_default.security_group_id]
  tag {
    key   = "owner"
    value = "platform-${var.suffix}"
  }
}

data "outscale_tags" "net_default" {
  filter {
    name   = "resource_ids"
    values = [data.outscale_security_group.net_default.security_group_id]
  }
  depends_on = [outscale_tag.net_default]
  lifecycle {
    postcondition {
      condition     = length(self.tags) == 1 && contains([for t in self.tags : t.value], "platform-${var.suffix}")
      error_message = "outscale_tags does not list the tag outscale_tag put on the default security group"
    }
  }
}
