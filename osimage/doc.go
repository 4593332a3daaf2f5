// Package osimage builds omi's bootable official OMIs from Debian packages.
//
// Two images are built, both as a 1 GiB GPT disk (compressed qcow2) that
// boots under SeaBIOS (syslinux's gptmbr.bin and ldlinux.sys on the EFI
// system partition, marked LegacyBIOSBootable) and under OVMF (syslinux.efi
// as EFI/BOOT/BOOTX64.EFI on the same partition), with the Debian cloud
// kernel and a small busybox initramfs that mounts the ext4 filesystem
// labelled omi-root:
//
//   - [BuildSmall]: busybox, dropbear, scp and sftp-server, about 16 MB. Its
//     init fetches the SSH key and user data from the metadata service at
//     169.254.169.254, as the real cloud's images do with cloud-init.
//   - [BuildDebian]: Debian minbase (debootstrap, needs root) with systemd,
//     openssh-server and python3, for Ansible.
//
// Packages come from the host's apt sources (apt-get download, checked
// against the archive index), so a build needs the Debian archive or a
// mirror. Nothing is mounted and no loop device is used: the filesystems
// are made with mformat/mcopy/syslinux (mtools) and mkfs.ext4 -d, the
// partition table with sfdisk. Results are cached by a hash of their
// inputs (see [Options.CacheDir]).
package osimage
