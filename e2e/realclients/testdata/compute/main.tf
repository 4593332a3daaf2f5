terraform {
  required_providers {
    outscale = {
      source = "outscale/outscale"
    }
  }
}

provider "outscale" {}

variable "suffix" { default = "x1" }
variable "other_account" {}
variable "bucket" {}

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

resource "outscale_keypair" "created" {
  keypair_name = "tf-created-${var.suffix}"
}

resource "outscale_keypair" "imported" {
  keypair_name = "tf-imported-${var.suffix}"
  public_key   = file("${path.module}/key.pub")
}

resource "outscale_vm" "web" {
  image_id                 = data.outscale_images.official.images[0].image_id
  vm_type                  = "tinav5.c1r1p2"
  keypair_name             = outscale_keypair.created.keypair_name
  placement_subregion_name = "eu-west-2a"
  # the official OMIs list legacy and uefi, as on the real cloud
  boot_mode = "uefi"
  tags {
    key   = "name"
    value = "web-${var.suffix}"
  }
}

resource "outscale_volume" "data" {
  subregion_name = "eu-west-2a"
  size           = 1
  volume_type    = "gp2"
  tags {
    key   = "name"
    value = "data-${var.suffix}"
  }
}

resource "outscale_volume" "fast" {
  subregion_name = "eu-west-2a"
  size           = 4
  volume_type    = "io1"
  iops           = 100
}

resource "outscale_volume_link" "data" {
  device_name = "/dev/xvdb"
  volume_id   = outscale_volume.data.volume_id
  vm_id       = outscale_vm.web.vm_id
}

resource "outscale_snapshot" "data" {
  volume_id   = outscale_volume.fast.volume_id
  description = "fast volume backup"
  tags {
    key   = "name"
    value = "snap-${var.suffix}"
  }
}

resource "outscale_snapshot_attributes" "share" {
  snapshot_id = outscale_snapshot.data.snapshot_id
  permissions_to_create_volume_additions {
    account_ids = [var.other_account]
  }
}

resource "outscale_image" "from_vm" {
  image_name = "tf-from-vm-${var.suffix}"
  vm_id      = outscale_vm.web.vm_id
  no_reboot  = true
  tags {
    key   = "built-by"
    value = "terraform"
  }
}

resource "outscale_image" "from_snapshot" {
  image_name       = "tf-from-snap-${var.suffix}"
  description      = "registered from a snapshot"
  root_device_name = "/dev/sda1"
  block_device_mappings {
    device_name = "/dev/sda1"
    bsu {
      snapshot_id           = outscale_snapshot.data.snapshot_id
      volume_type           = "standard"
      delete_on_vm_deletion = true
    }
  }
}

resource "outscale_image_launch_permission" "share" {
  image_id = outscale_image.from_vm.image_id
  permission_additions {
    account_ids = [var.other_account]
  }
}

resource "outscale_public_ip" "web" {
  tags {
    key   = "name"
    value = "web-ip"
  }
}

resource "outscale_public_ip_link" "web" {
  vm_id     = outscale_vm.web.vm_id
  public_ip = outscale_public_ip.web.public_ip
}

resource "outscale_image_export_task" "from_snapshot" {
  image_id = outscale_image.from_snapshot.image_id
  osu_export {
    disk_image_format = "qcow2"
    osu_bucket        = var.bucket
    osu_prefix        = "omis"
  }
  tags {
    key   = "name"
    value = "omi-export"
  }
  # provider 1.8.0 waits for "available" where the API says "completed"
  wait_for_completion = false
}

resource "outscale_snapshot_export_task" "data" {
  snapshot_id = outscale_snapshot.data.snapshot_id
  osu_export {
    disk_image_format = "qcow2"
    osu_bucket        = var.bucket
    osu_prefix        = "snapshots"
  }
  wait_for_completion = false
}

resource "outscale_access_key" "ci" {
  state           = "ACTIVE"
  expiration_date = "2099-01-01T00:00:00Z"
}

data "outscale_image_export_task" "from_snapshot" {
  filter {
    name   = "task_ids"
    values = [outscale_image_export_task.from_snapshot.task_id]
  }
}

data "outscale_snapshot_export_task" "data" {
  filter {
    name   = "task_ids"
    values = [outscale_snapshot_export_task.data.task_id]
  }
}

data "outscale_images" "mine" {
  filter {
    name   = "image_ids"
    values = [outscale_image.from_vm.image_id, outscale_image.from_snapshot.image_id]
  }
}

data "outscale_vm" "web" {
  filter {
    name   = "vm_ids"
    values = [outscale_vm.web.vm_id]
  }
}
# Only this configuration's VM: a filter on the key alone also finds the VMs
# other configurations of the same account are deleting at the time, and
# provider 1.8.0's outscale_vms panics when one of their volumes goes away
# between its read of the VMs and its read of their volumes (it drops that
# error, data_source_outscale_vms.go:132, then indexes a nil map).
data "outscale_vms" "tagged" {
  filter {
    name   = "tags"
    values = ["name=web-${var.suffix}"]
  }
  depends_on = [outscale_vm.web]
}
data "outscale_vm_state" "web" {
  vm_id = outscale_vm.web.vm_id
}
data "outscale_vm_states" "all" {
  filter {
    name   = "vm_ids"
    values = [outscale_vm.web.vm_id]
  }
}
data "outscale_image" "from_vm" {
  filter {
    name   = "image_ids"
    values = [outscale_image.from_vm.image_id]
  }
}
data "outscale_snapshot" "data" {
  filter {
    name   = "snapshot_ids"
    values = [outscale_snapshot.data.snapshot_id]
  }
}
data "outscale_snapshots" "mine" {
  filter {
    name   = "tag_keys"
    values = ["name"]
  }
  depends_on = [outscale_snapshot.data]
}
data "outscale_volume" "data" {
  filter {
    name   = "volume_ids"
    values = [outscale_volume.data.volume_id]
  }
}
data "outscale_volumes" "all" {
  filter {
    name   = "volume_ids"
    values = [outscale_volume.data.volume_id, outscale_volume.fast.volume_id]
  }
}
data "outscale_keypair" "created" {
  filter {
    name   = "keypair_names"
    values = [outscale_keypair.created.keypair_name]
  }
}
data "outscale_keypairs" "all" {
  filter {
    name   = "keypair_names"
    values = [outscale_keypair.created.keypair_name, outscale_keypair.imported.keypair_name]
  }
}
data "outscale_public_ip" "web" {
  filter {
    name   = "public_ips"
    values = [outscale_public_ip.web.public_ip]
  }
}
data "outscale_public_ips" "all" {
  depends_on = [outscale_public_ip.web]
}

data "outscale_quotas" "compute" {
  filter {
    name   = "collections"
    values = ["Compute"]
  }
  depends_on = [outscale_vm.web]
}
data "outscale_regions" "all" {}
data "outscale_subregions" "all" {}
data "outscale_vm_types" "small" {
  filter {
    name   = "vm_type_names"
    values = ["tinav5.c1r1p2"]
  }
}
data "outscale_product_types" "all" {}
data "outscale_product_type" "linux" {
  filter {
    name   = "product_type_ids"
    values = ["0001"]
  }
}
data "outscale_image_export_tasks" "all" {
  depends_on = [outscale_image_export_task.from_snapshot]
}
data "outscale_snapshot_export_tasks" "all" {
  depends_on = [outscale_snapshot_export_task.data]
}
data "outscale_account" "me" {}
data "outscale_accounts" "all" {}
data "outscale_access_keys" "mine" {
  depends_on = [outscale_access_key.ci]
}
data "outscale_access_key" "ci" {
  filter {
    name   = "access_key_ids"
    values = [outscale_access_key.ci.access_key_id]
  }
}
data "outscale_tag" "web_name" {
  filter {
    name   = "resource_ids"
    values = [outscale_vm.web.vm_id]
  }
  filter {
    name   = "keys"
    values = ["name"]
  }
}
data "outscale_tags" "web" {
  filter {
    name   = "resource_ids"
    values = [outscale_vm.web.vm_id]
  }
}

output "checks" {
  value = {
    vm_state   = data.outscale_vm_state.web.vm_state
    regions    = length(data.outscale_regions.all.regions)
    subregions = length(data.outscale_subregions.all.subregions)
    volumes    = length(data.outscale_volumes.all.volumes)
    keypairs   = length(data.outscale_keypairs.all.keypairs)
    images     = length(data.outscale_images.mine.images)
  }
}
