include:
  - .repo
  - .install
  - .binaries
  - .user
  - .grain
