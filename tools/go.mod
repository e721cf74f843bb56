module github.com/switchyard/switchyard/tools

go 1.26.8
