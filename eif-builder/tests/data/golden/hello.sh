#!/bin/sh
echo "$GREETING from the golden image"
