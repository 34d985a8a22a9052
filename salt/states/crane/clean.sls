{#- `salt '*' state.apply crane.clean`: stop CraneSched's daemons and remove what the formula
    installed. CraneSched's data under CraneBaseDir is kept unless crane:clean:remove_data. #}
include:
  - .package.clean
  - .firewall.clean
  - .gres.clean
