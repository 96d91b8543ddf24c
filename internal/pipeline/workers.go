package pipeline

import "github.com/twmb/franz-go/pkg/kgo"

// job is a record waiting for a worker.
type job struct {
	r    *kgo.Record
	done func(resolved bool)
}

// startWorkers starts n workers that run until the pipeline's context
// ends.
func (p *Pipeline) startWorkers(n int) {
	p.jobs = make(chan job, 64*n)
	p.resumed = make(chan *enriching)
	for range n {
		go p.work()
	}
	go p.stopWhenDone()
}

// stopWhenDone closes the queue to new records once the context ends, and
// then abandons the ones left in it. dispatch queues a record only while
// the queue is open, so none can stay behind after this drain.
func (p *Pipeline) stopWhenDone() {
	<-p.ctx.Done()
	p.queueMu.Lock()
	p.queueClosed = true
	p.queueMu.Unlock()
	p.abandonQueued()
}

func (p *Pipeline) work() {
	for {
		select {
		case j := <-p.jobs:
			if p.ctx.Err() != nil {
				p.abandon(j)
				continue
			}
			p.process(j.r, j.done)
		case e := <-p.resumed:
			p.send(e.r, e.ev, e.done)
		case <-p.ctx.Done():
			p.abandonQueued()
			return
		}
	}
}

// dispatch queues r for a worker, or abandons it once the pipeline's
// context has ended.
func (p *Pipeline) dispatch(r *kgo.Record, done func(bool)) {
	j := job{r: r, done: done}
	p.queueMu.RLock()
	defer p.queueMu.RUnlock()
	if p.queueClosed {
		p.abandon(j)
		return
	}
	select {
	case p.jobs <- j:
	case <-p.ctx.Done():
		p.abandon(j)
	}
}

func (p *Pipeline) abandon(j job) {
	p.abandoned.Add(1)
	j.done(false)
}

// abandonQueued gives up the records that no worker took before the
// context ended. They stay uncommitted and are read again after a restart.
func (p *Pipeline) abandonQueued() {
	for {
		select {
		case j := <-p.jobs:
			p.abandon(j)
		default:
			return
		}
	}
}
