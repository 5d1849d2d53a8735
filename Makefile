# Two commands do everything on a fresh machine:
#   make run   — create .venv, install, start the app on http://127.0.0.1:7860
#   make test  — create .venv, install (Chromium from Debian too), run the tests
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
SUDO   := $(shell [ "$$(id -u)" = "0" ] || echo sudo)

.PHONY: run test install install-dev chromium fluidsynth bench clean

$(VENV)/.installed-run: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt requirements-ray.txt $(VENV)/.installed-run
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed-run
install-dev: $(VENV)/.installed-dev

run: install fluidsynth
	$(PY) scripts/make_example_clips.py
	$(PY) app.py

chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
		echo "installing Chromium from Debian for the browser tests"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium >/dev/null; \
	fi

# FluidSynth and a General MIDI soundfont render the built-in clean music (ground truth, example clips).
fluidsynth:
	@if ! command -v fluidsynth >/dev/null || [ ! -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ]; then \
		echo "installing FluidSynth and the FluidR3 GM soundfont from Debian"; \
		$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq fluidsynth fluid-soundfont-gm >/dev/null; \
	fi

test: install-dev chromium fluidsynth
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) -m pytest -q

bench: install
	$(PY) -m restoration bench

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
