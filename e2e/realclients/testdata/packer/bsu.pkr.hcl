# No required_plugins block: the plugin build in ../shared/clients is 1.6.1
# but reports 1.0.7-dev (built without the release's version flags), which
# no version constraint accepts; packer finds it in PACKER_PLUGIN_PATH.

variable "suffix" {
  type = string
}

# No communicator: omi's VMs do not boot, so nothing can be provisioned over
# SSH. The plugin still makes its temporary keypair and its temporary
# security group (with a rule for port 0, sent without ports) and removes
# them at the end.
source "outscale-bsu" "debian" {
  vm_type = "tinav7.c1r1p1"
  source_omi_filter {
    filters = {
      "image-name" = "Debian-12-*"
    }
    owners      = ["Outscale"]
    most_recent = true
  }
  communicator                = "none"
  associate_public_ip_address = true
  omi_name                    = "packer-debian-${var.suffix}"
  omi_description             = "built by packer against omi"
  tags = {
    builder = "packer"
    suffix  = var.suffix
  }
}

build {
  sources = ["source.outscale-bsu.debian"]
}
