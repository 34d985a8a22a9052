{#- First in crane.clean: the crane_drift beacon and its files go before any daemon stops, so
    the stops are not reported (or healed) as drift. #}

crane-heal-clean-beacon:
  crane_drift.beacon:
    - name: crane_drift
    - enabled: false

crane-heal-clean-baseline-file-absent:
  file.absent:
    - names:
      - {{ salt["crane_drift.path"]("baseline") }}
      - {{ salt["crane_drift.path"]("seen") }}
    - require:
      - crane_drift: crane-heal-clean-beacon
