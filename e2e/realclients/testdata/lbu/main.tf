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

# A load balancer of the public Cloud in front of two VMs, with a sticky
# policy on its HTTP listener, a health check and access logs set through
# outscale_load_balancer_attributes.
resource "outscale_security_group" "web" {
  security_group_name = "lb-web-${var.suffix}"
  description         = "web VMs behind the public load balancer"
}

resource "outscale_vm" "web" {
  count              = 2
  image_id           = data.outscale_images.official.images[0].image_id
  vm_type            = "tinav5.c1r1p2"
  security_group_ids = [outscale_security_group.web.security_group_id]
}

resource "outscale_load_balancer" "public" {
  load_balancer_name = "pub-${var.suffix}"
  subregion_names    = ["eu-west-2a"]
  listeners {
    backend_port           = 80
    backend_protocol       = "HTTP"
    load_balancer_protocol = "HTTP"
    load_balancer_port     = 80
  }
  listeners {
    backend_port           = 22
    backend_protocol       = "TCP"
    load_balancer_protocol = "TCP"
    load_balancer_port     = 2222
  }
  tags {
    key   = "name"
    value = "pub-${var.suffix}"
  }
}

resource "outscale_load_balancer_vms" "public" {
  load_balancer_name = outscale_load_balancer.public.load_balancer_name
  backend_vm_ids     = outscale_vm.web[*].vm_id
}

resource "outscale_load_balancer_policy" "sticky" {
  load_balancer_name       = outscale_load_balancer.public.load_balancer_name
  policy_name              = "sticky-${var.suffix}"
  policy_type              = "load_balancer"
  cookie_expiration_period = 600
}

resource "outscale_load_balancer_attributes" "public" {
  load_balancer_name = outscale_load_balancer.public.load_balancer_name
  health_check {
    healthy_threshold   = 3
    unhealthy_threshold = 4
    check_interval      = 15
    timeout             = 5
    path                = "/health"
    port                = 80
    protocol            = "HTTP"
  }
}

resource "outscale_load_balancer_attributes" "logs" {
  load_balancer_name = outscale_load_balancer.public.load_balancer_name
  access_log {
    is_enabled           = true
    osu_bucket_name      = "lb-logs-${var.suffix}"
    osu_bucket_prefix    = "pub"
    publication_interval = 5
  }
  depends_on = [outscale_load_balancer_attributes.public]
}

resource "outscale_load_balancer_attributes" "policy" {
  load_balancer_name = outscale_load_balancer.public.load_balancer_name
  load_balancer_port = 80
  policy_names       = [outscale_load_balancer_policy.sticky.policy_name]
  depends_on         = [outscale_load_balancer_attributes.logs]
}

# An internal load balancer in a subnet of a Net, with two security groups
# of the Net, a VM of the subnet behind it and a listener rule.
resource "outscale_net" "lb" {
  ip_range = "10.30.0.0/16"
}

resource "outscale_subnet" "lb" {
  net_id         = outscale_net.lb.net_id
  ip_range       = "10.30.1.0/24"
  subregion_name = "eu-west-2a"
}

resource "outscale_security_group" "lb" {
  count               = 2
  security_group_name = "lb-net-${count.index}-${var.suffix}"
  description         = "internal load balancer"
  net_id              = outscale_net.lb.net_id
}

resource "outscale_vm" "app" {
  image_id           = data.outscale_images.official.images[0].image_id
  vm_type            = "tinav5.c1r1p2"
  subnet_id          = outscale_subnet.lb.subnet_id
  security_group_ids = [outscale_security_group.lb[0].security_group_id]
}

resource "outscale_load_balancer" "internal" {
  load_balancer_name = "int-${var.suffix}"
  load_balancer_type = "internal"
  subnets            = [outscale_subnet.lb.subnet_id]
  security_groups    = outscale_security_group.lb[*].security_group_id
  listeners {
    backend_port           = 8080
    backend_protocol       = "HTTP"
    load_balancer_protocol = "HTTP"
    load_balancer_port     = 80
  }
}

resource "outscale_load_balancer_vms" "internal" {
  load_balancer_name = outscale_load_balancer.internal.load_balancer_name
  backend_vm_ids     = [outscale_vm.app.vm_id]
}

resource "outscale_load_balancer_listener_rule" "api" {
  listener {
    load_balancer_name = outscale_load_balancer.internal.load_balancer_name
    load_balancer_port = 80
  }
  listener_rule {
    action             = "forward"
    listener_rule_name = "api-${var.suffix}"
    path_pattern       = "/api/*"
    priority           = 10
  }
  vm_ids = [outscale_vm.app.vm_id]
}

# Data sources.
data "outscale_load_balancer" "public" {
  filter {
    name   = "load_balancer_names"
    values = [outscale_load_balancer.public.load_balancer_name]
  }
  depends_on = [outscale_load_balancer_vms.public, outscale_load_balancer_attributes.policy]
}

data "outscale_load_balancers" "all" {
  filter {
    name   = "load_balancer_names"
    values = [outscale_load_balancer.public.load_balancer_name, outscale_load_balancer.internal.load_balancer_name]
  }
  depends_on = [outscale_load_balancer_vms.public, outscale_load_balancer_vms.internal, outscale_load_balancer_attributes.policy]
}

data "outscale_load_balancer_tags" "public" {
  load_balancer_names = [outscale_load_balancer.public.load_balancer_name]
}

data "outscale_load_balancer_vm_health" "internal" {
  load_balancer_name = outscale_load_balancer.internal.load_balancer_name
  backend_vm_ids     = [outscale_vm.app.vm_id]
  depends_on         = [outscale_load_balancer_vms.internal]
}

data "outscale_load_balancer_listener_rule" "api" {
  filter {
    name   = "listener_rule_names"
    values = [outscale_load_balancer_listener_rule.api.listener_rule[0].listener_rule_name]
  }
}

data "outscale_load_balancer_listener_rules" "all" {
  filter {
    name   = "listener_rule_names"
    values = [outscale_load_balancer_listener_rule.api.listener_rule[0].listener_rule_name]
  }
}

data "outscale_quotas" "listeners" {
  filter {
    name   = "quota_types"
    values = [outscale_load_balancer.public.load_balancer_name]
  }
}

output "public_dns_name" {
  value = data.outscale_load_balancer.public.dns_name
}

output "health" {
  value = data.outscale_load_balancer_vm_health.internal.backend_vm_health[0].state
}

output "listener_quota_used" {
  value = data.outscale_quotas.listeners.quotas[0].used_value
}

# An HTTPS load balancer whose listener uses a certificate uploaded to EIM.
# The test writes a self-signed certificate and its key into certs/, as a
# user keeps them beside the configuration.
resource "outscale_server_certificate" "web" {
  name        = "web-${var.suffix}"
  path        = "/lbu/"
  body        = file("certs/certificate.pem")
  chain       = file("certs/certificate.pem")
  private_key = file("certs/certificate.key")
}

resource "outscale_load_balancer" "tls" {
  load_balancer_name = "tls-${var.suffix}"
  subregion_names    = ["eu-west-2a"]
  listeners {
    backend_port           = 8443
    backend_protocol       = "HTTPS"
    load_balancer_protocol = "HTTPS"
    load_balancer_port     = 443
    server_certificate_id  = outscale_server_certificate.web.orn
  }
}

data "outscale_server_certificate" "web" {
  filter {
    name   = "paths"
    values = [outscale_server_certificate.web.path]
  }
  depends_on = [outscale_server_certificate.web]
  lifecycle {
    postcondition {
      condition     = self.orn == outscale_server_certificate.web.orn && self.name == "web-${var.suffix}"
      error_message = "outscale_server_certificate does not find the certificate by its path"
    }
  }
}

data "outscale_server_certificates" "all" {
  depends_on = [outscale_server_certificate.web]
  lifecycle {
    postcondition {
      condition     = contains([for c in self.server_certificates : c.orn], outscale_server_certificate.web.orn)
      error_message = "outscale_server_certificates does not list the certificate"
    }
  }
}
