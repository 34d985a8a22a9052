include:
  - .install
  - .grain
