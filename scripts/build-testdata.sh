#!/usr/bin/env bash
# Placeholder replaced by the testdata matrix builder.
exit 0
