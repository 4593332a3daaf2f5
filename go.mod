module github.com/omiproject/omi

go 1.26
