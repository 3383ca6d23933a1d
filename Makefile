# The two commands a new user needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: demo test env serve worker lint clean

# The demo runs in debug mode on localhost (no SECRET_KEY or HTTPS needed); tests do not.
demo serve worker: export DEBUG = 1

$(BIN)/activate: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(BIN)/activate

env: $(BIN)/activate

# Mail is printed by the worker (EMAIL_URL=console:); chat alerts go to catch_webhooks, which prints them.
demo: export EMAIL_URL ?= console:
# Links in alerts point at the demo's own address.
demo: export NOTIFWATCH_BASE_URL ?= http://$(HOST):$(PORT)

demo: env
	$(BIN)/python manage.py migrate --no-input -v0
	$(BIN)/python manage.py seed_demo
	$(BIN)/python manage.py collectstatic --no-input -v0
	@echo ""
	@echo "  notifwatch is running at http://$(HOST):$(PORT)/"
	@echo "  Log in as: demo / demo-password   (role: admin)"
	@echo "  Assign an exception to reviewer or Engineering: the email and the chat message"
	@echo "  print here within a minute (mail on the console, chat via catch_webhooks on :8025)."
	@echo "  Stop with Ctrl+C."
	@echo ""
	@trap 'kill 0' INT TERM EXIT; \
	$(BIN)/python manage.py run_worker --interval 2 & \
	$(BIN)/python manage.py catch_webhooks --port 8025 & \
	$(BIN)/gunicorn notifwatch.wsgi --bind $(HOST):$(PORT) --workers 2 --threads 4 \
		--access-logfile - --log-level warning

test: env
	$(BIN)/python -m pytest $(PYTEST_ARGS)

serve: env
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

worker: env
	$(BIN)/python manage.py run_worker

lint: env
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) var
