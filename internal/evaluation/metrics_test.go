package evaluation

import (
	"errors"
	"math"
	"testing"
)

func TestScoreHandComputed(t *testing.T) {
	// truth: P P P N N ; scores 0.9 0.6 0.3 0.7 0.1 ; threshold 0.5
	// predictions: P P N P N → TP=2 FN=1 FP=1 TN=1
	cases := []Case{{true, 0.9}, {true, 0.6}, {true, 0.3}, {false, 0.7}, {false, 0.1}}
	m, err := Score(cases, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	if m.ConfusionMatrix != [2][2]int{{1, 1}, {1, 2}} {
		t.Fatalf("confusion = %v", m.ConfusionMatrix)
	}
	want := map[string][2]float64{
		"accuracy":    {m.Accuracy, 3.0 / 5},
		"sensitivity": {m.Sensitivity, 2.0 / 3},
		"specificity": {m.Specificity, 1.0 / 2},
		"precision":   {m.Precision, 2.0 / 3},
		"f1":          {m.F1, 4.0 / 6},
		// pairs (pos,neg): (0.9>0.7,0.9>0.1,0.6<0.7,0.6>0.1,0.3<0.7,0.3>0.1) → 4/6
		"roc_auc": {m.ROCAUC, 4.0 / 6},
	}
	for k, v := range want {
		if math.Abs(v[0]-v[1]) > 1e-12 {
			t.Errorf("%s = %v, want %v", k, v[0], v[1])
		}
	}
}

func TestROCAUCTiesCountHalf(t *testing.T) {
	m, _ := Score([]Case{{true, 0.5}, {false, 0.5}, {true, 0.8}, {false, 0.2}}, 0.5)
	// pairs: (0.5,0.5)=0.5 (0.5,0.2)=1 (0.8,0.5)=1 (0.8,0.2)=1 → 3.5/4
	if m.ROCAUC != 3.5/4 {
		t.Fatalf("auc = %v", m.ROCAUC)
	}
}

func TestScoreDegenerate(t *testing.T) {
	if _, err := Score(nil, 0.5); !errors.Is(err, ErrNoCases) {
		t.Fatalf("err = %v", err)
	}
	m, _ := Score([]Case{{true, 0.9}, {true, 0.2}}, 0.5)
	if !math.IsNaN(m.ROCAUC) || !math.IsNaN(m.Specificity) || m.Sensitivity != 0.5 {
		t.Fatalf("m = %+v", m)
	}
}
